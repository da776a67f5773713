"""``ghostnp gradcheck``: every layer's backward pass checked by central differences."""

from __future__ import annotations

from ..errors import Interrupted
from .common import add_command

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Add ``gradcheck`` and its options to the command line."""
    g = add_command(
        subparsers, "gradcheck", "check every layer's backward pass by central differences"
    )
    g.add_argument("--backend", choices=["numba", "numpy"], default="numba", help="kernels")
    g.add_argument("--tol", type=float, default=1e-7, help="relative tolerance")
    g.add_argument("--seed", type=int, default=0, help="random seed of inputs and gradients")
    g.set_defaults(func=run)


def run(args) -> int:
    """Print each layer's report and a summary line; exit 0 when every layer passes.
    Ctrl-C says how many layers were checked and how many of them failed."""
    from .. import gradcheck
    from ..kernels import use_backend

    results = []
    with use_backend(args.backend):
        count, checks = gradcheck.iter_layer_checks(tol=args.tol, seed=args.seed)
        try:
            for name, report in checks:
                print(f"== {name}")
                print(report, flush=True)
                results.append((name, report))
        except KeyboardInterrupt:
            failed = sum(not r.passed for _, r in results)
            raise Interrupted(
                f"interrupted after {len(results)} of {count} layers ({failed} failed so far)"
            ) from None
    ok = all(r.passed for _, r in results)
    rows = [row for _, r in results for row in r.rows]
    by_rel = [row.rel_error for row in rows if row.rel_error <= args.tol]
    floor = sum(1 for row in rows if row.passed and row.rel_error > args.tol)
    print(
        f"\n{len(results)} layers, {len(rows)} arrays checked on the {args.backend} backend; "
        f"worst relative error {max(by_rel, default=0.0):.2e} (tolerance {args.tol:.0e}); "
        f"{floor} arrays with a true gradient of zero (e.g. a bias before BN) passed on the "
        f"absolute floor: {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1
