"""The grader: runs an assignment's checks on a student's file and scores them.

An assignment's checks (``ghostnp/assignments/checks/<name>.py``) are plain functions
registered in order, cheapest first, each worth some points:

    checks = CheckList()

    @checks.add("im2col: output shape", points=1)
    def im2col_shape(ctx):
        cols = ctx.get("im2col")(x, 3, 3, stride=2, padding=1)
        if cols.shape != (2, 27, 16):
            raise Fail("im2col returns shape ..., expected ...: ...")
        return "4 geometries"                       # shown beside PASS

A check passes when it returns and fails when it raises: `Fail` carries the message
for the student (what is wrong and the likely mistake); any other exception from the
student's code becomes a message naming the exception and the line of the student's
file it came from. A check may name earlier checks it ``needs``; it is skipped (and
fails, with a message) when one of them failed.

While the checks run: the library's implementation of what the assignment asks for is
hidden (`Hiding`), the NumPy backend is selected, ghostnp's global generator is seeded
per check and restored afterwards, the student's prints go to stderr (stdout belongs to
the report), and each check runs under a time limit, so that an endless loop fails its
check instead of hanging the grader. Ctrl-C stops the grading with `ghostnp.Interrupted`
(a KeyboardInterrupt) saying which check it stopped in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..errors import Interrupted
from ..kernels import use_backend
from ..rng import generator, manual_seed
from .hiding import HiddenError, Hiding

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "Check",
    "CheckList",
    "CheckResult",
    "CheckTimeout",
    "Context",
    "Fail",
    "GradeReport",
    "call_with_time_limit",
    "run_checks",
]

DEFAULT_TIME_LIMIT = 20.0  # seconds per check; the solutions need well under one


class Fail(Exception):
    """A check failed; the message says what is wrong and, where it can, why."""


class CheckTimeout(BaseException):
    """A check ran out of time. A BaseException, so that ``except Exception`` in the
    student's code does not swallow it."""


@dataclass(frozen=True)
class Check:
    """One graded check: a name, its points, the function and the checks it needs."""

    name: str
    points: float
    run: object  # (Context) -> str | None
    needs: tuple = ()


class CheckList:
    """An ordered list of checks, filled with the ``add`` decorator."""

    def __init__(self):
        self.checks = []

    def add(self, name: str, points: float, needs=()):
        """Register the decorated ``fn(ctx)`` as a check named ``name``."""
        needs = (needs,) if isinstance(needs, str) else tuple(needs)
        known = {c.name for c in self.checks}
        for n in needs:
            if n not in known:
                raise ValueError(f"check {name!r} needs {n!r}, which is not registered before it")

        def register(fn):
            self.checks.append(Check(name, float(points), fn, needs))
            return fn

        return register

    def __iter__(self):
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    @property
    def max_score(self) -> float:
        return float(sum(c.points for c in self.checks))


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``points`` earned out of ``max_points``."""

    name: str
    passed: bool
    points: float
    max_points: float
    message: str
    skipped: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """The check as it appears in grade's JSON: name, passed, points, message."""
        return {
            "name": self.name,
            "passed": self.passed,
            "points": self.points,
            "message": self.message,
        }


@dataclass(frozen=True)
class GradeReport:
    """The graded checks of one submission; prints as a table."""

    assignment: str
    results: tuple
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return float(sum(r.points for r in self.results))

    @property
    def max_score(self) -> float:
        return float(sum(r.max_points for r in self.results))

    def to_dict(self) -> dict:
        """``{"assignment", "score", "max_score", "checks": [...]}`` (grade's JSON)."""
        return {
            "assignment": self.assignment,
            "score": self.score,
            "max_score": self.max_score,
            "checks": [r.to_dict() for r in self.results],
        }

    def __str__(self) -> str:
        lines = [
            f"assignment {self.assignment}: {_num(self.score)} / {_num(self.max_score)} points"
        ]
        for r in self.results:
            verdict = "PASS" if r.passed else ("SKIP" if r.skipped else "FAIL")
            pts = f"{_num(r.points)}/{_num(r.max_points)}"
            lines.append(f"  {verdict}  {pts:>5}  {r.name}")
            if r.message:
                lines.append(f"               {r.message}")
        return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:g}"


# ----------------------------------------------------------------------------------
# Time limit
# ----------------------------------------------------------------------------------


def call_with_time_limit(fn, seconds: float):
    """Return ``fn()``, or raise CheckTimeout once it has run for ``seconds``.

    In the main thread of a system with ``signal.setitimer`` a timer signal interrupts
    the code (between two Python statements; a single long NumPy call finishes first),
    and it keeps firing every 50 ms, so that code which catches the first one still
    stops. Elsewhere ``fn`` runs in a daemon thread that is abandoned on time-out.
    """
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return _call_with_alarm(fn, seconds)
    return _call_in_thread(fn, seconds)


def _call_with_alarm(fn, seconds: float):
    state = {"active": True}

    def on_alarm(signum, frame):
        if state["active"]:
            raise CheckTimeout(seconds)

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)
    try:
        try:
            return fn()
        finally:
            state["active"] = False
    finally:
        state["active"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)


def _call_in_thread(fn, seconds: float):
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise CheckTimeout(seconds)
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ----------------------------------------------------------------------------------
# Running a submission
# ----------------------------------------------------------------------------------


class Context:
    """What a check sees: the student's module and the way to the library's reference.

    ``ctx.get(name)`` returns what the student's file defines under ``name``;
    ``with ctx.reference(): ...`` lifts the hiding for code that computes expected
    values with the library (``ctx.reference("ghostnp.gradcheck")`` lifts only those
    names, e.g. to run the library's gradient check on the student's functions).
    """

    def __init__(self, module, filename: str, hiding: Hiding):
        self.module = module
        self.filename = filename
        self._hiding = hiding

    def get(self, name: str):
        try:
            return getattr(self.module, name)
        except AttributeError:
            raise Fail(f"{self.filename} defines no {name!r} (was it renamed?)") from None

    def reference(self, *prefixes):
        return self._hiding.revealed(*prefixes)


def describe_exception(e: BaseException, path: Path) -> str:
    """One line for an exception raised while a check ran the student's code."""
    if isinstance(e, CheckTimeout):
        return (
            f"stopped after {e.args[0]:g} s, the time limit of a check: an endless loop, or "
            "code far slower than it needs to be?"
        )
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, NotImplementedError):
        return text or "not written yet (NotImplementedError)"
    if isinstance(e, HiddenError):
        return text
    where = ""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == path]
    if frames:
        f = frames[-1]
        where = f" ({path.name}, line {f.lineno}, in {f.name})"
    return f"{type(e).__name__}: {text}{where}" if text else f"{type(e).__name__}{where}"


def _import_submission(path: Path, name: str):
    """Execute the student's file as a fresh module named ``name`` (not cached, no .pyc)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


_runs = [0]


def _restore_rng(state) -> None:
    generator().bit_generator.state = state


def run_checks(assignment: str, checks, path, time_limit: float = DEFAULT_TIME_LIMIT):
    """Grade the student's file ``path`` with ``checks`` (a CheckList); returns a GradeReport.

    ``assignment`` selects what is hidden (see ``HIDDEN``). Each check runs with a fresh
    seed (its position) and at most ``time_limit`` seconds.
    """
    path = Path(path).resolve()
    start = time.perf_counter()
    results = []
    _runs[0] += 1
    module_name = f"_ghostnp_submission_{_runs[0]}"
    saved_rng = generator().bit_generator.state
    failed = set()
    with contextlib.ExitStack() as stack:
        stack.callback(_restore_rng, saved_rng)
        stack.enter_context(use_backend("numpy"))
        hiding = stack.enter_context(Hiding(assignment))
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        stack.callback(sys.modules.pop, module_name, None)
        import_error = None
        if not path.is_file():
            import_error = f"{path.name} not found in {path.parent}"
        else:
            try:
                module = call_with_time_limit(
                    lambda: _import_submission(path, module_name), time_limit
                )
            except KeyboardInterrupt:
                raise Interrupted(
                    f"interrupted while importing {path.name}; nothing was scored"
                ) from None
            except BaseException as e:
                import_error = f"{path.name} does not import: {describe_exception(e, path)}"
            finally:
                hiding.apply()
        ctx = None if import_error else Context(module, path.name, hiding)
        for i, check in enumerate(checks):
            t0 = time.perf_counter()
            missing = [n for n in check.needs if n in failed]
            if import_error:
                passed, message, skipped = False, import_error, False
            elif missing:
                passed, skipped = False, True
                message = f"skipped: it needs {missing[0]!r} to pass first"
            else:
                manual_seed(1000 + i)
                skipped = False
                try:
                    note = call_with_time_limit(lambda c=check: c.run(ctx), time_limit)
                    passed, message = True, (note or "")
                except Fail as e:
                    passed, message = False, str(e)
                except KeyboardInterrupt:
                    raise Interrupted(
                        f"interrupted in check {i + 1} of {len(checks)} ({check.name}); "
                        "nothing was scored"
                    ) from None
                except BaseException as e:
                    passed, message = False, describe_exception(e, path)
                finally:
                    hiding.apply()  # in case a time-out struck inside a reveal
            if not passed:
                failed.add(check.name)
            results.append(
                CheckResult(
                    check.name,
                    passed,
                    check.points if passed else 0.0,
                    check.points,
                    message,
                    skipped,
                    time.perf_counter() - t0,
                )
            )
    return GradeReport(assignment, tuple(results), time.perf_counter() - start)
