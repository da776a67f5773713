"""Every loader gives one short ghostnp error for a file it cannot use, never advice to
load unsafely, and changes nothing: load_checkpoint, read_state_dict /
load_torch_weights, and on the command line ``visualize --checkpoint`` and
``train --resume`` (one line, exit code 2)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from helpers import one_line_error, run_cli

import ghostnp
from ghostnp import models
from ghostnp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ghostnp.errors import StateDictError, WeightsFileError
from ghostnp.interop import export_state_dict, load_torch_weights, read_state_dict

UNSAFE = ("allow_pickle", "weights_only", "pickle.load", "trust")


def small(width=0.1, version=1):
    ghostnp.manual_seed(0)
    build = models.ghostnet if version == 1 else models.ghostnetv2
    return build(width, num_classes=10, in_chans=1, dropout=0.0)


def assert_clean(message: str, path) -> None:
    """Short, names the file, and advises nothing unsafe."""
    assert str(path) in message
    assert len(message.splitlines()) <= 15, message
    for word in UNSAFE:
        assert word not in message, message


@pytest.fixture
def bad_npz(tmp_path):
    """name -> a file named .npz that no loader can use."""
    good = save_checkpoint(tmp_path / "good.npz", small())
    data = good.read_bytes()
    files = {
        "truncated": data[: len(data) // 2],
        "random": np.random.default_rng(0).bytes(4096),
        "pickle": pickle.dumps({"conv_stem.weight": [1.0, 2.0]}),
    }
    out = {}
    for name, blob in files.items():
        out[name] = tmp_path / f"{name}.npz"
        out[name].write_bytes(blob)
    out["object arrays"] = tmp_path / "objects.npz"
    np.savez(out["object arrays"], w=np.array([{"a": 1}], dtype=object))
    out["single array"] = tmp_path / "single.npz"
    with open(out["single array"], "wb") as f:
        np.save(f, np.zeros(3))
    return out


def test_load_checkpoint_and_read_state_dict_reject_bad_npz_files_cleanly(bad_npz):
    for kind, path in bad_npz.items():
        model = small()
        before = model.state_dict()
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path, model)
        assert_clean(str(info.value), path)
        with pytest.raises(WeightsFileError) as info:
            load_torch_weights(model, path)
        assert_clean(str(info.value), path)
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v, before[k], err_msg=f"{kind}: {k}")
    assert "truncated or corrupt" in str(
        pytest.raises(WeightsFileError, read_state_dict, bad_npz["truncated"]).value
    )
    assert "not an .npz file" in str(
        pytest.raises(WeightsFileError, read_state_dict, bad_npz["random"]).value
    )
    assert "pickled Python objects" in str(
        pytest.raises(WeightsFileError, read_state_dict, bad_npz["object arrays"]).value
    )


def test_bad_torch_files_never_suggest_weights_only_false(tmp_path, torch):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(3)}, good)
    data = good.read_bytes()
    cases = {
        "truncated.pth": data[: len(data) // 2],
        "random.pth": np.random.default_rng(1).bytes(2048),
        "plain-pickle.pt": pickle.dumps({"w": [1.0]}),
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    torch.save({"w": torch.zeros(3), "f": len}, tmp_path / "code.pth")  # a pickled function
    for name in [*cases, "code.pth"]:
        path = tmp_path / name
        with pytest.raises(WeightsFileError) as info:
            read_state_dict(path)
        assert_clean(str(info.value), path)
    assert "pickled Python objects" in str(
        pytest.raises(WeightsFileError, read_state_dict, tmp_path / "code.pth").value
    )


def test_missing_files_are_file_not_found(tmp_path):
    for call in (
        lambda p: load_checkpoint(p, small()),
        read_state_dict,
        lambda p: load_torch_weights(small(), p),
    ):
        with pytest.raises(FileNotFoundError, match="missing.npz"):
            call(tmp_path / "missing.npz")


def test_another_models_weights_give_a_short_error(tmp_path):
    """Weights of GhostNet 1.0x into 0.5x, and of ResNet-56 into GhostNet: hundreds of
    problems, a dozen lines; the error keeps the full lists."""
    big = models.ghostnet_100()
    ckpt = save_checkpoint(tmp_path / "big.npz", models.ghostnet_050())
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt, big)
    msg = str(info.value)
    assert_clean(msg, ckpt)
    assert "wrong entries" in msg.splitlines()[0] and "... and" in msg

    weights = export_state_dict(models.resnet56(), tmp_path / "resnet.npz")
    before = big.state_dict()
    with pytest.raises(StateDictError) as info:
        load_torch_weights(big, weights)
    msg = str(info.value)
    assert len(msg.splitlines()) <= 15, msg
    first = msg.splitlines()[0]
    missing, unexpected = info.value.problems["missing key"], info.value.problems["unexpected key"]
    assert f"{len(missing)} missing keys" in first and f"{len(unexpected)} unexpected keys" in first
    assert len(missing) + len(unexpected) > 400
    for k, v in big.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


# -- the command line -------------------------------------------------------------------
@pytest.fixture
def photo(tmp_path):
    from matplotlib import image as mpimg

    path = tmp_path / "photo.png"
    mpimg.imsave(path, np.random.default_rng(0).random((32, 32, 3)))
    return path


def test_visualize_with_a_bad_checkpoint_is_one_line(tmp_path, photo, bad_npz):
    for kind in ("truncated", "random", "object arrays"):
        path = bad_npz[kind]
        result = run_cli(["visualize", photo, "--checkpoint", path], cwd=tmp_path)
        line = one_line_error(result, "visualize")
        assert_clean(line, path)
    assert not (tmp_path / "ghost_maps.png").exists()
    result = run_cli(["visualize", photo, "--checkpoint", tmp_path / "nope.npz"], cwd=tmp_path)
    assert "nope.npz" in one_line_error(result, "visualize")


def test_train_resume_from_a_bad_checkpoint_is_one_line_and_writes_nothing(tmp_path, bad_npz):
    other = save_checkpoint(tmp_path / "bare.npz", small())  # not written by ghostnp train
    for path in (bad_npz["truncated"], bad_npz["random"], other, tmp_path / "nope.npz"):
        result = run_cli(["train", "--resume", path, "--out", tmp_path / "run"], cwd=tmp_path)
        assert_clean(one_line_error(result, "train"), path)
    assert not (tmp_path / "run").exists()
