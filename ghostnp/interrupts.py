"""Ctrl-C that waits for the end of a step that must not be cut in half.

    with defer_interrupts():          # every parameter updated, or none
        optimizer.step()
        scheduler.step()

Python turns Ctrl-C (SIGINT) into a KeyboardInterrupt at whatever line is running. In
the middle of an optimizer step that would leave some parameters updated and others
not. Inside ``defer_interrupts`` a SIGINT is only noted; when the block ends it is
delivered as `DeferredInterrupt` (a KeyboardInterrupt), so the caller knows that the
block itself completed. Signals can only be caught in the main thread; elsewhere the
block runs unguarded (no SIGINT reaches other threads anyway).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from .errors import Interrupted

__all__ = ["defer_interrupts", "DeferredInterrupt", "Interrupted"]


class DeferredInterrupt(KeyboardInterrupt):
    """Ctrl-C that arrived inside `defer_interrupts`, raised once its block completed."""


@contextmanager
def defer_interrupts():
    """Hold SIGINT back until the block ends, then raise `DeferredInterrupt`.

    If the handler in place before was not Python's default one (a program's own), it
    is called instead, as the signal would have called it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if not received:
        return
    if previous is signal.default_int_handler or previous in (signal.SIG_DFL, None):
        raise DeferredInterrupt
    if callable(previous):
        previous(signal.SIGINT, None)
    # SIG_IGN: the signal was to be ignored
