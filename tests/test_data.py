"""ghostnp.data: built-in digits, IDX and CIFAR readers, DataLoader, transforms."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from importlib import resources

import numpy as np
import pytest

from ghostnp.data import (
    DATASETS,
    ArrayDataset,
    Compose,
    DataLoader,
    Dataset,
    DigitsDataset,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    get_dataset,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_cifar_batch,
    read_idx,
    resize,
)
from ghostnp.data.cifar import _reconstruct

# ---------------------------------------------------------------- built-in digits

TRAIN_PER_CLASS = [142, 146, 142, 146, 145, 146, 145, 143, 139, 144]
TEST_PER_CLASS = [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]


def _digits_file():
    ref = resources.files("ghostnp").joinpath("data_files/digits.npz")
    with ref.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_digits_file_loads_without_pickle():
    z = _digits_file()
    assert set(z) == {"images", "labels", "split"}
    assert z["images"].shape == (1797, 8, 8) and z["images"].dtype == np.uint8
    assert z["labels"].shape == (1797,) and z["labels"].dtype == np.uint8
    assert z["images"].max() == 16 and z["images"].min() == 0
    assert set(np.unique(z["labels"])) == set(range(10))
    assert set(np.unique(z["split"])) == {0, 1}


def test_digits_license_file():
    text = resources.files("ghostnp").joinpath("data_files/DIGITS_LICENSE.txt").read_text()
    for needle in ("Alpaydin", "Kaynak", "10.24432/C50P49", "CC BY 4.0", "UCI"):
        assert needle in text


def test_digits_counts_shapes_and_range():
    for split, n in (("train", 1438), ("test", 359), ("all", 1797)):
        x, y = load_digits(split)
        assert x.shape == (n, 1, 32, 32) and x.dtype == np.float32 and x.flags.c_contiguous
        assert y.shape == (n,) and y.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
    x, _ = load_digits("train", size=28)
    assert x.shape == (1438, 1, 28, 28)


def test_digits_split_disjoint_covering_and_stratified():
    z = _digits_file()
    xtr, ytr = load_digits("train", size=8)
    xte, yte = load_digits("test", size=8)
    xall, yall = load_digits("all", size=8)
    assert len(ytr) + len(yte) == len(yall) == 1797
    # size 8 is the raw digit / 16
    np.testing.assert_array_equal(xall[:, 0] * 16, z["images"])
    np.testing.assert_array_equal(xtr[:, 0] * 16, z["images"][z["split"] == 0])

    def rows(x, y):
        return sorted((int(label), img.tobytes()) for img, label in zip(x, y, strict=True))

    assert rows(np.concatenate([xtr, xte]), np.concatenate([ytr, yte])) == rows(xall, yall)
    assert np.bincount(ytr, minlength=10).tolist() == TRAIN_PER_CLASS
    assert np.bincount(yte, minlength=10).tolist() == TEST_PER_CLASS
    frac = np.bincount(yte) / np.bincount(yall)
    assert np.all(np.abs(frac - 0.2) < 0.01)


def test_digits_deterministic_and_centred():
    a, la = load_digits("test")
    b, lb = load_digits("test")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    # 24x24 digit centred in 32x32: a 4-pixel black border
    border = np.ones((32, 32), bool)
    border[4:28, 4:28] = False
    assert np.all(a[:, 0][:, border] == 0)
    assert np.all(a[:, 0, 4:28, 4:28].reshape(len(a), -1).max(axis=1) > 0)


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")
    with pytest.raises(ValueError, match="at least 8"):
        load_digits("train", size=4)
    with pytest.raises(TypeError):
        load_digits("train", size=32.0)


def test_digits_dataset():
    ds = DigitsDataset(train=False, size=16)
    assert len(ds) == 359 and isinstance(ds, Dataset)
    img, label = ds[0]
    assert img.shape == (1, 16, 16) and img.dtype == np.float32 and isinstance(label, int)
    flipped = DigitsDataset(train=False, size=16, transform=RandomHorizontalFlip(p=1.0))
    np.testing.assert_array_equal(flipped[3][0], ds[3][0][:, :, ::-1])


# ---------------------------------------------------------------- IDX (MNIST layout)


def _idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write(path, data: bytes, gz: bool):
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _make_idx(folder, prefix="train", n=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / f"{prefix}-images-idx3-ubyte", _idx_bytes(images, 2051), gz)
    _write(folder / f"{prefix}-labels-idx1-ubyte", _idx_bytes(labels, 2049), gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_load_raw_and_gzipped(tmp_path, gz):
    images, labels = _make_idx(tmp_path, "train", gz=gz)
    timages, tlabels = _make_idx(tmp_path, "t10k", n=3, gz=gz, seed=1)
    x, y = load_mnist(tmp_path, train=True)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    x, y = load_fashion_mnist(tmp_path, train=False)
    assert x.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(y, tlabels)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_idx_torchvision_layout_and_get_dataset(tmp_path):
    images, labels = _make_idx(tmp_path / "MNIST" / "raw", "train", gz=True)
    x, y = get_dataset("MNIST", root=tmp_path, size=32)
    assert x.shape == (5, 1, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(y, labels)
    x28, _ = get_dataset("mnist", root=tmp_path)
    np.testing.assert_allclose(x28[:, 0], images / 255.0, rtol=1e-6)


def test_idx_wrong_magic(tmp_path):
    _make_idx(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[:4] = struct.pack(">I", 1234)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"expected IDX magic 2051 in .*train-images.*got 1234"):
        load_mnist(tmp_path)
    # a label file where an image file belongs is caught by its magic too
    labels = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(labels.read_bytes())
    with pytest.raises(ValueError, match="got 2049"):
        load_mnist(tmp_path)


def test_idx_truncated_and_extra_data(tmp_path):
    _make_idx(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    full = path.read_bytes()
    path.write_bytes(full[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path)
    path.write_bytes(full[:10])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path)
    path.write_bytes(full + b"\x00")
    with pytest.raises(ValueError, match="longer than its header"):
        load_mnist(tmp_path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        read_idx(path, 2051)


def test_idx_count_mismatch_and_bad_labels(tmp_path):
    _make_idx(tmp_path, n=5)
    labels = np.arange(4, dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 2049))
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.full(5, 12), 2049))
    with pytest.raises(ValueError, match="0..9"):
        load_mnist(tmp_path)


def test_idx_missing_files_and_bad_gzip(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_mnist(tmp_path / "nowhere")
    _make_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, train=False)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(1), 2049))
    with pytest.raises(ValueError, match="gzip"):
        load_mnist(tmp_path, train=False)


# ---------------------------------------------------------------- CIFAR-10 batches


class _Py2StylePickler(pickle._Pickler):
    """Writes strings as Python 2's pickles do (BINSTRING) and numpy's old module path."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        if isinstance(obj, str):
            obj = obj.encode("latin1")
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj, name=None):
        if obj is _reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _batch_dict(data, labels, i=1):
    return {
        b"batch_label": f"training batch {i} of 5".encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"img_{i}_{k}.png".encode() for k in range(len(labels))],
    }


def _write_batch(path, data, labels, py2=False, i=1):
    d = _batch_dict(data, labels, i)
    if py2:
        buf = io.BytesIO()
        _Py2StylePickler(buf, protocol=2).dump(d)
        path.write_bytes(buf.getvalue())
    else:
        path.write_bytes(pickle.dumps(d, protocol=2))


def _make_cifar(folder, n=3, py2=False):
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    datas, labelss = [], []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names, start=1):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n)
        _write_batch(folder / name, data, labels, py2=py2, i=i)
        datas.append(data)
        labelss.append(labels)
    return datas, labelss


@pytest.mark.parametrize("py2", [False, True])
def test_cifar_load(tmp_path, py2):
    datas, labelss = _make_cifar(tmp_path / "cifar-10-batches-py", py2=py2)
    x, y = load_cifar10(tmp_path, train=True)
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, np.concatenate(labelss[:5]))
    data = np.concatenate(datas[:5])
    # channel planes: first 1024 values red, next green, then blue; rows top to bottom
    np.testing.assert_allclose(x[4, 0, 0, :], data[4, :32] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(x[4, 1, 2, 5], data[4, 1024 + 2 * 32 + 5] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(x[4, 2, 31, 31], data[4, 3071] / 255.0, rtol=1e-6)
    xt, yt = load_cifar10(tmp_path / "cifar-10-batches-py", train=False)
    assert xt.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(yt, labelss[5])
    xg, _ = get_dataset("cifar-10", root=tmp_path, train=False, size=16)
    assert xg.shape == (3, 3, 16, 16)


def test_cifar_refuses_disallowed_globals(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    with pytest.raises(ValueError, match=r"os\.system"):
        read_cifar_batch(path)
    assert not marker.exists()

    class Evil:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"global (__builtin__|builtins)\.eval"):
        read_cifar_batch(path)
    # _codecs.encode is allowed only for latin-1
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(ValueError, match="encoding"):
        read_cifar_batch(path)


def test_cifar_malformed_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _make_cifar(folder)
    bad = folder / "data_batch_2"
    _write_batch(bad, np.zeros((3, 1000), np.uint8), [0, 1, 2])
    with pytest.raises(ValueError, match=r"data_batch_2.*\(3, 1000\)"):
        load_cifar10(tmp_path)
    _write_batch(bad, np.zeros((3, 3072), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_cifar10(tmp_path)
    _write_batch(bad, np.zeros((3, 3072), np.float32), [0, 1, 2])
    with pytest.raises(ValueError, match="float32"):
        load_cifar10(tmp_path)
    bad.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ValueError, match="list"):
        load_cifar10(tmp_path)
    bad.write_bytes(pickle.dumps({b"labels": [1]}, protocol=2))
    with pytest.raises(ValueError, match="no key"):
        load_cifar10(tmp_path)
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="data_batch_2"):
        load_cifar10(tmp_path)
    bad.unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_2"):
        load_cifar10(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no cifar-10-batches-py folder"):
        load_cifar10(empty)


def test_get_dataset_errors():
    with pytest.raises(ValueError, match="digits, mnist, fashion-mnist, cifar10"):
        get_dataset("imagenet")
    with pytest.raises(ValueError, match="root"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match="size"):
        get_dataset("digits", size=0)
    assert DATASETS == ("digits", "mnist", "fashion-mnist", "cifar10")
    x, y = get_dataset("digits", train=False)
    xd, yd = load_digits("test")
    np.testing.assert_array_equal(x, xd)
    np.testing.assert_array_equal(y, yd)


# ---------------------------------------------------------------- Dataset / DataLoader


def _toy(n=10, shape=(2, 3, 3)):
    images = np.arange(n * int(np.prod(shape)), dtype=np.float32).reshape(n, *shape)
    return ArrayDataset(images, np.arange(n))


def test_loader_batches_and_len():
    ds = _toy(10)
    loader = DataLoader(ds, batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    for x, y in batches:
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape[1:] == (2, 3, 3)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x, ds.images[y])
    assert np.concatenate([y for _, y in batches]).tolist() == list(range(10))
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(y) for _, y in dropped] == [4, 4]
    tiny = DataLoader(ds, batch_size=64, drop_last=True)
    assert len(tiny) == 0 and list(tiny) == []
    assert len(DataLoader(ds, batch_size=64)) == 1


def test_loader_shuffle_each_sample_once_and_reproducible():
    ds = _toy(23)
    a = DataLoader(ds, batch_size=5, shuffle=True, seed=3)
    b = DataLoader(ds, batch_size=5, shuffle=True, seed=3)
    epochs_a = [np.concatenate([y for _, y in a]) for _ in range(3)]
    epochs_b = [np.concatenate([y for _, y in b]) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b, strict=True):
        assert sorted(ea.tolist()) == list(range(23))
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(epochs_a[0], epochs_a[1])
    assert a.epoch == 3
    a.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate([y for _, y in a]), epochs_a[1])
    np.testing.assert_array_equal(a.epoch_indices(2), epochs_a[2])
    c = DataLoader(ds, batch_size=5, shuffle=True, seed=4)
    assert not np.array_equal(np.concatenate([y for _, y in c]), epochs_a[0])
    unseeded = DataLoader(ds, batch_size=5, shuffle=True)
    assert sorted(np.concatenate([y for _, y in unseeded]).tolist()) == list(range(23))


def test_loader_slow_path_matches_fast_path():
    ds = _toy(9)
    slow = ArrayDataset(ds.images, ds.labels, transform=lambda x: x)

    class Plain:
        def __len__(self):
            return 9

        def __getitem__(self, i):
            return ds.images[i].astype(np.float64), np.int32(i)

    for other in (slow, Plain()):
        fast_batches = list(DataLoader(ds, batch_size=4, shuffle=True, seed=1))
        other_batches = list(DataLoader(other, batch_size=4, shuffle=True, seed=1))
        for (xf, yf), (xo, yo) in zip(fast_batches, other_batches, strict=True):
            np.testing.assert_array_equal(xf, xo)
            np.testing.assert_array_equal(yf, yo)
            assert xo.dtype == np.float32 and yo.dtype == np.int64 and xo.flags.c_contiguous


def test_loader_errors():
    ds = _toy(4)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    for bad in (1.5, True, "8"):
        with pytest.raises(TypeError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader([1, 2, 3].__iter__())
    with pytest.raises(ValueError, match="seed"):
        DataLoader(ds, seed=-1)
    with pytest.raises(ValueError, match="epoch"):
        DataLoader(ds).set_epoch(-1)

    class Ragged:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.zeros((1, 4 + i, 4), np.float32), i

    with pytest.raises(ValueError, match="one shape"):
        list(DataLoader(Ragged(), batch_size=2))


def test_array_dataset_validation():
    with pytest.raises(ValueError, match="images\\[:, None\\]"):
        ArrayDataset(np.zeros((3, 4, 4)), np.zeros(3, int))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        ArrayDataset(np.zeros((3, 1, 4, 4)), np.zeros(2, int))
    with pytest.raises(TypeError, match="integers"):
        ArrayDataset(np.zeros((3, 1, 4, 4)), np.zeros(3))
    ds = ArrayDataset(np.zeros((3, 1, 4, 4), np.uint8), [0, 1, 2])
    assert ds.images.dtype == np.float32 and ds.labels.dtype == np.int64
    assert ds[-1][1] == 2
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError):
        ds[0][0][0, 0, 0] = 1.0  # read-only view of the stored images


# ---------------------------------------------------------------- transforms


def test_random_crop_shapes_window_and_seed(rng):
    x = rng.standard_normal((3, 32, 32)).astype(np.float32)
    crop = RandomCrop(32, padding=4, rng=0)
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4)))
    for _ in range(10):
        y = crop(x)
        assert y.shape == (3, 32, 32)
        assert any(
            np.array_equal(y, padded[:, i : i + 32, j : j + 32]) for i in range(9) for j in range(9)
        )
    c1, c2 = RandomCrop((20, 24), rng=5), RandomCrop((20, 24), rng=5)
    for _ in range(5):
        y1 = c1(x)
        assert y1.shape == (3, 20, 24)
        np.testing.assert_array_equal(y1, c2(x))
    np.testing.assert_array_equal(RandomCrop(32)(x), x)
    with pytest.raises(ValueError, match="larger"):
        RandomCrop(40, padding=2)(x)
    with pytest.raises(ValueError, match="padding"):
        RandomCrop(8, padding=-1)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        crop(x[0])


def test_random_horizontal_flip(rng):
    x = rng.standard_normal((2, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), x[:, :, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    flip = RandomHorizontalFlip(p=0.5, rng=1)
    outs = [flip(x) for _ in range(200)]
    n_flipped = sum(np.array_equal(o, x[:, :, ::-1]) for o in outs)
    assert all(np.array_equal(o, x) or np.array_equal(o, x[:, :, ::-1]) for o in outs)
    assert 70 < n_flipped < 130
    with pytest.raises(ValueError):
        RandomHorizontalFlip(p=1.5)


def test_normalize(rng):
    x = rng.random((3, 4, 4)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    y = Normalize(mean, std)(x)
    assert y.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(y[c], (x[c] - mean[c]) / std[c], rtol=1e-6)
    np.testing.assert_allclose(Normalize(0.5, 0.5)(x[:1]), (x[:1] - 0.5) / 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="3 channels but mean/std have 1"):
        Normalize([0.5], [0.5])(x)
    with pytest.raises(ValueError, match="positive"):
        Normalize([0.0, 0.0, 0.0], [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="one value per channel"):
        Normalize([0.0, 0.0], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_constant_and_identity(rng, align_corners):
    const = np.full((2, 7, 9), 0.375, np.float32)
    for size in (3, 16, (5, 20)):
        y = Resize(size, align_corners=align_corners)(const)
        np.testing.assert_allclose(y, 0.375, rtol=1e-6)
    x = rng.random((3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(resize(x, 6, align_corners=align_corners), x, rtol=1e-6)
    batch = rng.random((4, 3, 8, 8)).astype(np.float32)
    y = resize(batch, (16, 12), align_corners=align_corners)
    assert y.shape == (4, 3, 16, 12) and y.dtype == np.float32
    np.testing.assert_allclose(y[2], resize(batch[2], (16, 12), align_corners), rtol=1e-6)


def test_resize_known_values():
    x = np.array([[0.0, 1.0]], np.float32)
    np.testing.assert_allclose(resize(x, (1, 4)), [[0.0, 0.25, 0.75, 1.0]])
    np.testing.assert_allclose(resize(x, (1, 3), align_corners=True), [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_matches_torch(torch, rng, align_corners):
    x = rng.random((2, 3, 8, 11)).astype(np.float32)
    for size in ((24, 24), (5, 4), (8, 30)):
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(x), size=size, mode="bilinear", align_corners=align_corners
        ).numpy()
        np.testing.assert_allclose(resize(x, size, align_corners), ref, atol=1e-6)


def test_compose_passes_rng(rng):
    x = rng.random((1, 8, 8)).astype(np.float32)
    t = Compose([RandomCrop(6, padding=1), RandomHorizontalFlip(), Normalize([0.5], [0.25])])
    a = t(x, rng=np.random.default_rng(9))
    b = t(x, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 6, 6)
    plain = Compose([lambda im: im * 2, Resize(4)])
    np.testing.assert_allclose(plain(x), resize(x * 2, 4), rtol=1e-6)
    with pytest.raises(TypeError):
        Compose([1])
