"""Plots return Figures with the expected panels; the similarity search finds a planted
pair; images load with the right shape and range; ``visualize_main`` and
``ghostnp visualize`` write a PNG or fail with a clear one-line error."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image as mpimg
from matplotlib.figure import Figure

from ghostnp import save_checkpoint
from ghostnp.cli import main
from ghostnp.cli.visualize import visualize_main
from ghostnp.data import load_image
from ghostnp.models import ghostnet
from ghostnp.nn import GhostModuleV2, Sequential
from ghostnp.nn.layers import BatchNorm2d, Conv2d, ReLU
from ghostnp.profile import memory, summary
from ghostnp.viz import (
    confusion_matrix,
    cosine_similarity,
    most_similar_pairs,
    plot_attention,
    plot_confusion,
    plot_feature_maps,
    plot_flops,
    plot_ghost_maps,
    plot_memory,
    plot_similarity,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_plot_feature_maps_one_axes_per_map(rng):
    fig = plot_feature_maps(rng.random((11, 6, 5)), ncols=4, title="maps")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 11  # the empty cells of the 3x4 grid are removed
    assert _titles(fig)[:3] == ["0", "1", "2"]
    assert len(plot_feature_maps(rng.random((1, 3, 4, 4))).axes) == 3  # a batch of one


def test_plot_feature_maps_rejects_bad_shapes(rng):
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        plot_feature_maps(rng.random((4, 4)))
    with pytest.raises(ValueError, match="ncols"):
        plot_feature_maps(rng.random((2, 4, 4)), ncols=0)


def test_plot_ghost_maps_pairs_each_ghost_with_its_intrinsic_map(rng):
    m, s = 5, 3  # ghost j comes from intrinsic j // (s - 1)
    intrinsic = rng.random((1, m, 6, 6))
    ghost = rng.random((1, m * (s - 1), 6, 6))
    fig = plot_ghost_maps(intrinsic, ghost, n=3, channels=[0, 2, 4])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * s
    grid = np.array(_titles(fig)).reshape(s, 3)  # rows: intrinsic, then its s-1 ghosts
    assert list(grid[0]) == ["intrinsic 0", "intrinsic 2", "intrinsic 4"]
    assert list(grid[1]) == ["ghost 0", "ghost 4", "ghost 8"]
    assert list(grid[2]) == ["ghost 1", "ghost 5", "ghost 9"]


def test_plot_ghost_maps_states_each_panels_colour_scale(rng):
    """Each panel is scaled on its own, so each one says what its darkest and brightest
    colours stand for."""
    intrinsic = rng.random((2, 4, 4))
    ghost = -3.0 * rng.random((2, 4, 4))  # ghost maps without a ReLU can be negative
    fig = plot_ghost_maps(intrinsic, ghost, n=2)
    labels = [ax.get_xlabel() for ax in fig.axes]
    expected = [intrinsic[0], intrinsic[1], ghost[0], ghost[1]]  # rows: intrinsic, then ghost
    assert labels == [f"{m.min():.3g} to {m.max():.3g}" for m in expected]
    assert labels[2].startswith("-")


def test_plot_ghost_maps_picks_the_liveliest_maps_and_checks_shapes(rng):
    intrinsic = np.zeros((6, 4, 4))
    intrinsic[[1, 4]] = rng.random((2, 4, 4))  # the others are dead (all zero)
    fig = plot_ghost_maps(intrinsic, rng.random((6, 4, 4)), n=2)
    assert len(fig.axes) == 4
    assert _titles(fig)[:2] == ["intrinsic 1", "intrinsic 4"]
    with pytest.raises(ValueError, match="do not fit"):
        plot_ghost_maps(rng.random((4, 4, 4)), rng.random((6, 4, 4)))
    with pytest.raises(ValueError, match="channels"):
        plot_ghost_maps(rng.random((4, 4, 4)), rng.random((4, 4, 4)), channels=[7])


def test_most_similar_pairs_finds_a_planted_duplicate(rng):
    maps = rng.standard_normal((10, 8, 8))
    maps[7] = 3.0 * maps[2]  # same direction, another scale: cosine 1
    maps[5] = 0.0  # a dead map has no direction and is never paired
    pairs = most_similar_pairs(maps, top=4)
    assert len(pairs) == 4
    assert pairs[0][:2] == (2, 7)
    assert pairs[0][2] == pytest.approx(1.0)
    assert all(i < j and 5 not in (i, j) for i, j, _ in pairs)
    assert [c for *_, c in pairs] == sorted((c for *_, c in pairs), reverse=True)
    s = cosine_similarity(maps)
    assert s.shape == (10, 10)
    assert np.isnan(s[5]).all() and np.isnan(s[:, 5]).all()
    assert np.allclose(np.diag(np.delete(np.delete(s, 5, 0), 5, 1)), 1.0)


def test_most_similar_pairs_centered_is_the_correlation(rng):
    maps = rng.random((4, 5, 5))
    maps[3] = maps[0] + 10.0  # an offset: correlation 1, cosine below 1
    (i, j, c), *_ = most_similar_pairs(maps, top=1, center=True)
    assert (i, j) == (0, 3) and c == pytest.approx(1.0)
    flat = maps.reshape(4, -1)
    assert cosine_similarity(maps, center=True) == pytest.approx(np.corrcoef(flat))
    with pytest.raises(ValueError, match="top"):
        most_similar_pairs(maps, top=0)


def test_plot_similarity_axes(rng):
    fig = plot_similarity(rng.random((6, 5, 5)), top=3)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 + 2 * 3  # matrix, colour bar, three pairs of maps
    fig = plot_similarity(rng.random((3, 5, 5)), top=10)  # only 3 pairs exist
    assert len(fig.axes) == 2 + 2 * 3


def _tiny_net():
    return Sequential(
        Conv2d(1, 4, 3, padding=1, bias=False), BatchNorm2d(4), ReLU(), Conv2d(4, 2, 1)
    )


def test_plot_flops_and_memory_axes():
    net = ghostnet(0.25, num_classes=10, in_chans=1)
    s = summary(net, (1, 32, 32), stages=True)
    fig = plot_flops(s)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights) * 1e6 == pytest.approx(s.total_macs)  # the bars add up to the total
    assert len(plot_flops(s.rows, by="stage").axes) == 2  # rows grouped into the same stages
    assert len(plot_flops(s, by="layer").axes) == 2
    fig = plot_memory(memory(net, (8, 1, 32, 32)))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(plot_memory(s).axes) == 2
    assert len(plot_memory(summary(_tiny_net(), (1, 8, 8)).rows).axes) == 1
    with pytest.raises(ValueError, match="by"):
        plot_flops(s, by="colour")
    with pytest.raises(TypeError):
        plot_flops([1, 2, 3])


def test_rows_group_into_the_summarys_stages():
    s = summary(ghostnet(0.25, num_classes=10), (3, 64, 64), stages=True)
    by_rows = plot_flops(s.rows).axes[0].get_xticklabels()
    by_stages = plot_flops(s).axes[0].get_xticklabels()
    assert [t.get_text() for t in by_rows] == [t.get_text() for t in by_stages]


def test_confusion_matrix_and_plot():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    m = confusion_matrix(y_true, y_pred, 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    fig = plot_confusion(y_true, y_pred, ["a", "b", "c"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # matrix and colour bar
    assert "0.667" in fig.axes[0].get_title()
    assert len(plot_confusion(y_true, y_pred, 3).axes) == 2
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix([0, 3], [0, 1], 3)


def test_plot_attention_from_a_ghost_module_v2(rng):
    mod = GhostModuleV2(3, 8).eval()
    mod(rng.random((1, 3, 12, 12)).astype(np.float32))
    gate = mod.attention_map()
    assert gate.shape == (1, 8, 12, 12) and 0 < gate.min() and gate.max() < 1
    fig = plot_attention(gate, channels=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 1 + 3  # the mean, then 3 channels
    fig = plot_attention(gate[0], image=rng.random((1, 3, 12, 12)), channels=2)
    assert len(fig.axes) == 1 + 1 + 2


def _write_png(path, array):
    mpimg.imsave(path, array)
    return path


def test_load_image_shape_range_and_crop(tmp_path):
    img = np.zeros((20, 40, 3))
    img[:, 10:30] = [1.0, 0.5, 0.0]  # the centred 20x20 square; the sides are black
    path = _write_png(tmp_path / "wide.png", img)
    x = load_image(path, size=10)
    assert x.shape == (1, 3, 10, 10) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.allclose(x[0, :, 0, 0], [1.0, 0.5, 0.0], atol=1 / 255)  # the crop is centred
    g = load_image(path, size=7, channels=1)
    assert g.shape == (1, 1, 7, 7)
    assert np.allclose(g, 0.299 + 0.587 * 0.5, atol=2 / 255)


def test_load_image_grey_file_to_three_channels(tmp_path):
    path = tmp_path / "grey.png"
    mpimg.imsave(path, np.full((9, 9), 0.25), cmap="gray", vmin=0, vmax=1)
    x = load_image(path, size=16, channels=3)
    assert x.shape == (1, 3, 16, 16)
    assert np.allclose(x, x[:, :1]) and np.allclose(x, 0.25, atol=1 / 255)


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        load_image(tmp_path / "nothing.png")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        load_image(bad)
    with pytest.raises(ValueError, match="channels"):
        load_image(bad, channels=2)


@pytest.fixture
def photo(tmp_path):
    r = np.random.default_rng(1)
    return _write_png(tmp_path / "photo.png", r.random((40, 48, 3)))


def test_visualize_main_writes_a_png(photo, tmp_path):
    out = visualize_main(photo, model="ghostnet_050", out=tmp_path / "sub" / "maps.png", size=32)
    assert out == tmp_path / "sub" / "maps.png"
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_visualize_main_shows_a_ghostnetv3_module(photo, tmp_path):
    """A V3 module's maps are drawn from its deploy form (the same maps in eval mode)."""
    out = visualize_main(photo, model="ghostnetv3_050", out=tmp_path / "v3.png", size=32)
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_visualize_main_follows_a_checkpoint(photo, tmp_path):
    net = ghostnet(0.5, num_classes=10, in_chans=1)
    ckpt = save_checkpoint(tmp_path / "last.npz", net, config={"model": "ghostnet", "width": 0.5})
    out = visualize_main(
        photo, checkpoint=ckpt, layer="blocks.2.0.ghost1", out=tmp_path / "m.png", size=32
    )
    assert out.read_bytes()[:8] == PNG_MAGIC
    # a model that disagrees with the checkpoint's is an error, the same network is not
    with pytest.raises(ValueError, match=r"ghostnet_130 disagrees with .*ghostnet \(width 0.5\)"):
        visualize_main(photo, model="ghostnet_130", checkpoint=ckpt, out=tmp_path / "n.png")
    assert not (tmp_path / "n.png").exists()
    out = visualize_main(
        photo, model="ghostnet_050", checkpoint=ckpt, out=tmp_path / "o.png", size=32
    )
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_visualize_main_errors(photo, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        visualize_main(tmp_path / "missing.jpg", model="ghostnet_050")
    with pytest.raises(ValueError, match=r"valid layers include blocks\.0\.0\.ghost1"):
        visualize_main(photo, model="ghostnet_050", layer="blocks.99.ghost1", size=32)
    with pytest.raises(ValueError, match="unknown model"):
        visualize_main(photo, model="ghostnet_999")
    with pytest.raises(ValueError, match="no Ghost module"):
        visualize_main(photo, model="resnet56", size=32)


def test_cli_visualize_missing_file(tmp_path, capsys):
    code = main(["visualize", str(tmp_path / "missing.png"), "--model", "ghostnet_050"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "missing.png" in err and "Traceback" not in err


def test_cli_visualize_writes_the_png(photo, tmp_path, capsys):
    out = tmp_path / "cli.png"
    code = main(["visualize", str(photo), "--model", "ghostnet_050", "--out", str(out)])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert out.read_bytes()[:8] == PNG_MAGIC
