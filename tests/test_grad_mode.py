"""ghostnp.no_grad: forward passes that keep no backward caches, the same numbers, far
less memory, and a clear error from a backward that follows them."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import ghostnp
from ghostnp import models, nn
from ghostnp.data import ArrayDataset, DataLoader
from ghostnp.errors import LayerStateError
from ghostnp.train import evaluate


def small_model(seed=0):
    ghostnp.manual_seed(seed)
    return models.ghostnet(0.1, num_classes=10, in_chans=1, dropout=0.0)


def batch(n=4, size=32, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 1, size, size)).astype(np.float32)


def cached_values(model):
    """Every backward cache the model's modules hold (None entries left out)."""
    return [
        getattr(m, name)
        for _, m in model.named_modules()
        for name in nn.module.BACKWARD_STATE
        if getattr(m, name, None) is not None
    ]


def test_context_manager_decorator_and_nesting():
    assert ghostnp.is_grad_enabled()
    with ghostnp.no_grad():
        assert not ghostnp.is_grad_enabled()
        with ghostnp.no_grad():
            assert not ghostnp.is_grad_enabled()
        assert not ghostnp.is_grad_enabled()  # the inner exit keeps the outer block
    assert ghostnp.is_grad_enabled()

    @ghostnp.no_grad()
    def called():
        return ghostnp.is_grad_enabled()

    @ghostnp.no_grad
    def bare():
        return ghostnp.is_grad_enabled()

    assert called() is False and bare() is False
    assert called.__name__ == "called"
    assert ghostnp.is_grad_enabled()

    # one instance entered twice, and an exception inside: the state is restored
    ctx = ghostnp.no_grad()
    with pytest.raises(RuntimeError), ctx, ctx:
        raise RuntimeError("boom")
    assert ghostnp.is_grad_enabled()


def test_no_grad_is_per_thread():
    seen = []
    inside, leave = threading.Event(), threading.Event()

    def worker():
        with ghostnp.no_grad():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(10)
    seen.append(ghostnp.is_grad_enabled())  # the main thread is not affected
    leave.set()
    t.join()
    assert seen == [True]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_same_outputs_and_no_caches(mode):
    x = batch()
    a, b = small_model(), small_model()
    getattr(a, mode)()
    getattr(b, mode)()
    ya = a(x)
    assert cached_values(a), "a normal forward keeps caches"
    with ghostnp.no_grad():
        yb = b(x)
    np.testing.assert_array_equal(ya, yb)
    assert cached_values(b) == []
    # train mode still updates the running statistics, as a normal forward does
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        np.testing.assert_array_equal(va, vb, err_msg=k)


def test_backward_after_no_grad_forward_says_why():
    model = small_model()
    x = batch()
    model(x)  # a forward with caches first: the no_grad forward must not reuse them
    with ghostnp.no_grad():
        logits = model(x)
    with pytest.raises(LayerStateError, match=r"no_grad\(\)") as err:
        model.backward(np.ones_like(logits))
    assert "classifier" in str(err.value)  # names the layer that had nothing to use
    # a normal forward afterwards trains again
    logits = model(x)
    model.backward(np.ones_like(logits))
    assert all(p.grad is not None for p in model.parameters())


def test_backward_before_any_forward_keeps_its_message():
    with pytest.raises(LayerStateError, match="backward called before forward"):
        nn.Linear(3, 2).backward(np.ones((1, 2), np.float32))


def test_evaluate_runs_under_no_grad():
    model = small_model()
    loader = DataLoader(ArrayDataset(batch(8), np.arange(8) % 10), 4)
    model(batch())  # leave caches from a training forward
    loss, acc = evaluate(model, loader)
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert cached_values(model) == []
    assert model.training  # mode restored


def test_visualize_runs_its_forward_under_no_grad(tmp_path, monkeypatch):
    from matplotlib import image as mpimg

    from ghostnp.cli.visualize import visualize_main
    from ghostnp.nn.ghost import GhostModule

    photo = tmp_path / "photo.png"
    mpimg.imsave(photo, np.random.default_rng(0).random((40, 40, 3)))
    modes = []
    forward = GhostModule.forward

    def spy(self, x):
        modes.append(ghostnp.is_grad_enabled())
        return forward(self, x)

    monkeypatch.setattr(GhostModule, "forward", spy)
    visualize_main(photo, model="ghostnet_050", out=tmp_path / "maps.png", size=64)
    assert modes and not any(modes)


@pytest.mark.slow
def test_no_grad_forward_of_ghostnet_peaks_at_a_third_of_the_memory():
    """GhostNet-1.0x, batch 8 at 224x224, on the NumPy backend (tracemalloc sees every
    array it allocates): the peak of a no_grad forward against a caching forward."""
    ghostnp.manual_seed(0)
    model = models.ghostnet_100().eval()
    x = np.random.default_rng(0).random((8, 3, 224, 224), dtype=np.float32)

    def peak(run):
        tracemalloc.start()
        try:
            y = run()
            return tracemalloc.get_traced_memory()[1], y
        finally:
            tracemalloc.stop()

    with ghostnp.use_backend("numpy"):
        cached, y_cached = peak(lambda: model(x))
        with ghostnp.no_grad():
            lean, y_lean = peak(lambda: model(x))
    ratio = lean / cached
    print(
        f"peak {lean / 2**20:.0f} MiB under no_grad, {cached / 2**20:.0f} MiB caching: {ratio:.2f}"
    )
    np.testing.assert_array_equal(y_lean, y_cached)
    assert ratio <= 0.35


@pytest.mark.slow
def test_evaluating_ghost_resnet56_keeps_no_training_caches():
    """The job `ghostnp train --model ghost_resnet56` evaluates with: evaluate() over a
    batch of 16 digits at 32x32 peaks at a fraction of one caching forward."""
    ghostnp.manual_seed(0)
    model = models.ghost_resnet56(num_classes=10, in_chans=1)
    x = np.random.default_rng(0).random((16, 1, 32, 32), dtype=np.float32)
    loader = DataLoader(ArrayDataset(x, np.arange(16) % 10), 16)
    with ghostnp.use_backend("numpy"):
        tracemalloc.start()
        try:
            evaluate(model, loader)
            lean = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        model.eval()
        tracemalloc.start()
        try:
            model(x)
            cached = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    print(f"evaluate {lean / 2**20:.0f} MiB, caching forward {cached / 2**20:.0f} MiB")
    assert lean <= 0.35 * cached
