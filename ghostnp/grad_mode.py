"""``no_grad``: run forward passes that keep nothing for a backward pass.

    with ghostnp.no_grad():
        logits = model(x)             # same numbers; no layer keeps a cache

    @ghostnp.no_grad()
    def predict(model, x):
        return model(x).argmax(axis=1)

A module's forward normally keeps what its backward needs (im2col matrices, batch-norm's
normalised input, activation masks, ...): for a whole network that is several times
the memory of the activations alone. Inside ``no_grad`` those caches are not kept, so
only the arrays in flight stay alive; a ``backward`` after such a forward raises a
`LayerStateError` that says so.

The switch is per thread (a forward in another thread is not affected) and nests:
leaving a ``no_grad`` block restores the state it found, even on an exception.
"""

from __future__ import annotations

import functools
import threading

__all__ = ["no_grad", "is_grad_enabled"]

_local = threading.local()


def is_grad_enabled() -> bool:
    """True unless the calling thread is inside a `no_grad` block."""
    return getattr(_local, "depth", 0) == 0


class no_grad:
    """Context manager and decorator: forward passes inside keep no backward caches.

    Use it as ``with ghostnp.no_grad(): ...``, ``@ghostnp.no_grad()`` or
    ``@ghostnp.no_grad``. One instance may be entered several times, nested, and from
    several threads: each thread counts its own depth.
    """

    def __new__(cls, func=None):
        if func is not None:  # used bare, as @no_grad
            return cls()(func)
        return super().__new__(cls)

    def __enter__(self) -> no_grad:
        _local.depth = getattr(_local, "depth", 0) + 1
        return self

    def __exit__(self, *exc) -> bool:
        _local.depth -= 1
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"no_grad: expected a function to decorate, got {type(func).__name__}")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        return "no_grad()"
