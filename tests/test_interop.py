"""Weight interchange: .npz and .pth/.pt files, to and from the PyTorch twin, and the
errors for files that cannot be used."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch_twins as tt
from helpers import rel_diff

import ghostnp
from ghostnp import StateDictError
from ghostnp.interop import export_state_dict, load_torch_weights, read_state_dict
from ghostnp.models import GhostNet

RTOL = 1e-9


def tiny(version=2, width=0.1, seed=0):
    ghostnp.manual_seed(seed)
    return GhostNet(width, 5, 0.0, version=version)


def with_statistics(model, rng):
    """Give every BN non-default running statistics and a batch count, so that buffers
    are checked as well as parameters."""
    sd = model.state_dict()
    for k, v in sd.items():
        if k.endswith("running_mean"):
            sd[k] = rng.uniform(-0.5, 0.5, v.shape).astype(v.dtype)
        elif k.endswith("running_var"):
            sd[k] = rng.uniform(0.5, 2.0, v.shape).astype(v.dtype)
        elif k.endswith("num_batches_tracked"):
            sd[k] = np.array(11, dtype=np.int64)
    return model.load_state_dict(sd, strict=True)


def assert_same_state(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype, k
        assert np.array_equal(a[k], b[k]), k


@pytest.fixture
def no_torch(monkeypatch):
    """Make ``import torch`` fail, as on a machine without PyTorch."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


# ----------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------


def test_npz_round_trip_is_exact(tmp_path, rng):
    model = with_statistics(tiny(), rng)
    path = export_state_dict(model, tmp_path / "w.npz")
    assert path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]  # no temporary left
    sd = read_state_dict(path)
    assert_same_state(sd, model.state_dict())
    other = tiny(seed=1)
    assert not np.array_equal(other.conv_stem.weight.data, model.conv_stem.weight.data)
    load_torch_weights(other, path)
    assert_same_state(other.state_dict(), model.state_dict())


def test_npz_round_trip_float64_and_new_folder(tmp_path, rng):
    model = with_statistics(tiny(version=1).astype(np.float64), rng)
    path = export_state_dict(model, tmp_path / "sub" / "dir" / "w.npz")
    assert_same_state(read_state_dict(path), model.state_dict())


@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_pth_round_trip_is_exact(suffix, tmp_path, rng, torch):
    model = with_statistics(tiny(), rng)
    path = export_state_dict(model, tmp_path / f"w{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"w{suffix}"]
    assert_same_state(read_state_dict(path), model.state_dict())
    other = load_torch_weights(tiny(seed=1), path)
    assert_same_state(other.state_dict(), model.state_dict())


def test_export_overwrites_an_existing_file(tmp_path, rng):
    path = tmp_path / "w.npz"
    export_state_dict(tiny(seed=1), path)
    model = with_statistics(tiny(seed=2), rng)
    export_state_dict(model, path)
    assert_same_state(read_state_dict(path), model.state_dict())


# ----------------------------------------------------------------------------------
# To and from PyTorch
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_pth_from_ghostnp_loads_into_the_torch_twin(version, tmp_path, rng, torch):
    model = with_statistics(tiny(version=version, width=0.25), rng).astype(np.float64).eval()
    path = export_state_dict(model, tmp_path / "ghostnp.pth")
    twin = tt.ghostnet_twin(0.25, 5, 0.0, version=version, dtype=torch.float64).eval()
    twin.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert int(twin.bn1.num_batches_tracked) == 11
    x = rng.standard_normal((2, 3, 48, 40))
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    err = rel_diff(model(x), expected)
    print(f"\nV{version} eval output, ghostnp vs torch after .pth: {err:.2e}")
    assert err <= RTOL


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module-prefix"])
def test_torch_saved_state_dict_loads_with_load_torch_weights(wrap, tmp_path, rng, torch):
    torch.manual_seed(0)
    twin = tt.ghostnet_twin(0.25, 5, 0.0, version=2, dtype=torch.float64).eval()
    with torch.no_grad():
        for name, buf in twin.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn_like(buf))
            elif name.endswith("running_var"):
                buf.add_(torch.rand_like(buf))
    sd = twin.state_dict()
    if wrap == "state_dict":
        sd = {"state_dict": sd, "epoch": 3}
    elif wrap == "module-prefix":  # as saved from nn.DataParallel
        sd = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / "torch.pth"
    torch.save(sd, path)

    model = load_torch_weights(tiny(version=2, width=0.25).astype(np.float64), path)
    model.eval()
    for k, v in twin.state_dict().items():
        assert np.array_equal(model.state_dict()[k], v.numpy()), k
    x = rng.standard_normal((2, 3, 48, 40))
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    assert rel_diff(model(x), expected) <= RTOL


# ----------------------------------------------------------------------------------
# Files that cannot be used
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["w.txt", "w.pkl", "w"])
def test_unknown_suffix(name, tmp_path):
    with pytest.raises(ValueError, match=r"\.npz, \.pth or \.pt"):
        export_state_dict(tiny(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / name).write_bytes(b"weights")
    with pytest.raises(ValueError, match=r"\.npz, \.pth or \.pt"):
        read_state_dict(tmp_path / name)


@pytest.mark.parametrize("name", ["missing.npz", "missing.pth"])
def test_missing_file(name, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        read_state_dict(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load_torch_weights(tiny(), tmp_path / name)


def test_corrupt_npz(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"this is not a zip archive" * 10)
    with pytest.raises(ValueError, match="bad.npz"):
        read_state_dict(path)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, weight=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="objects.npz"):
        read_state_dict(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_pth(tmp_path, torch):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"\x80\x04 definitely not a torch file")
    with pytest.raises(ValueError, match="bad.pth"):
        read_state_dict(path)


class Payload:
    """Anything but tensors: weights_only=True must refuse to unpickle it."""


def test_pth_with_code_is_refused(tmp_path, torch):
    path = tmp_path / "code.pth"
    torch.save({"weight": Payload()}, path)
    with pytest.raises(ValueError, match="code.pth"):
        read_state_dict(path)


def test_pth_that_is_not_a_state_dict(tmp_path, torch):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(ValueError, match="state dict"):
        read_state_dict(path)


def test_weights_of_another_width_are_refused_with_every_problem_listed(tmp_path):
    path = export_state_dict(tiny(width=0.25), tmp_path / "w.npz")
    model = tiny(width=0.5)
    before = model.state_dict()
    with pytest.raises(StateDictError) as info:
        load_torch_weights(model, path)
    msg = str(info.value)
    # the message counts them and shows the first few; the error keeps them all
    wrong = info.value.problems["wrong entry"]
    assert msg.splitlines()[0].endswith(f"found {len(wrong)} wrong entries; nothing was loaded")
    assert "conv_stem.weight" in msg and "classifier.weight" not in msg
    assert len(msg.splitlines()) <= 15 and f"and {len(wrong) - 8} more" in msg
    assert len(wrong) > 10 and all("expected shape" in w for w in wrong)
    assert_same_state(model.state_dict(), before)  # nothing was loaded


def test_v1_weights_into_v2_list_the_missing_keys(tmp_path):
    path = export_state_dict(tiny(version=1), tmp_path / "v1.npz")
    with pytest.raises(StateDictError, match="missing key: blocks.2.0.ghost1.short_conv"):
        load_torch_weights(tiny(version=2), path)
    model = load_torch_weights(tiny(version=2), path, strict=False)
    assert np.array_equal(model.conv_stem.weight.data, read_state_dict(path)["conv_stem.weight"])


# ----------------------------------------------------------------------------------
# Without PyTorch
# ----------------------------------------------------------------------------------


def test_reading_pth_without_torch_says_what_to_install(tmp_path, no_torch):
    path = tmp_path / "w.pth"
    path.write_bytes(b"anything")
    with pytest.raises(ImportError, match=r"ghostnp\[torch\]"):
        read_state_dict(path)
    with pytest.raises(ImportError, match=r"ghostnp\[torch\]"):
        load_torch_weights(tiny(), path)


def test_writing_pth_without_torch_says_what_to_install(tmp_path, no_torch):
    with pytest.raises(ImportError, match=r"ghostnp\[torch\]"):
        export_state_dict(tiny(), tmp_path / "w.pth")
    assert list(tmp_path.iterdir()) == []


def test_npz_works_without_torch(tmp_path, rng, no_torch):
    with pytest.raises(ImportError):
        import torch  # noqa: F401  (the fixture is in force)
    model = with_statistics(tiny(), rng)
    path = export_state_dict(model, tmp_path / "w.npz")
    other = load_torch_weights(tiny(seed=3), path)
    assert_same_state(other.state_dict(), model.state_dict())
