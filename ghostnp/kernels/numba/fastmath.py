"""What the compiler may do to the arithmetic of the Numba kernels.

``FASTMATH`` only lets a multiply and an add fuse into one FMA: no sum is reordered, so
these kernels add their terms in the order written. ``REDUCE`` also lets additions be
reassociated, which lets a sum be vectorised into several partial sums; it is used for
the batch-norm sums and the final per-channel reduction of a depthwise weight gradient.
The order then depends on the machine's vector width, never on the thread count: every
result is the same on one thread and on many.
"""

FASTMATH = {"contract"}
REDUCE = {"contract", "reassoc"}
