"""The graded assignments: for every assignment the untouched starter scores 0, the
solution scores full marks and a planted common mistake scores part of them with a
message that names it; the solution-region tooling, the hiding of the library's own
implementation, the time limit, and the ``ghostnp assignment`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import ghostnp
from ghostnp import assignments
from ghostnp import functional as F
from ghostnp.assignments import ASSIGNMENTS, HIDDEN, MANIFEST, AssignmentError
from ghostnp.assignments.grader import CheckList, CheckTimeout, call_with_time_limit, run_checks
from ghostnp.assignments.hiding import HiddenError, Hiding, resolve
from ghostnp.assignments.source import solution_regions, student_version
from ghostnp.kernels import get_backend, use_backend

NAMES = [a.name for a in ASSIGNMENTS]


def _start(tmp_path, name, solution, patch=()):
    """Start assignment ``name`` in a fresh folder, apply (old, new) replacements to its
    file (each must match exactly once), and return the folder."""
    folder = tmp_path / f"{name}-{'key' if solution else 'starter'}"
    assignments.start(name, folder, solution=solution)
    path = folder / assignments.get_assignment(name).filename
    text = path.read_text()
    for old, new in patch:
        assert text.count(old) == 1, f"the patch {old!r} must match once in {path.name}"
        text = text.replace(old, new)
    path.write_text(text)
    return folder


def _by_name(report):
    return {r.name: r for r in report.results}


# ----------------------------------------------------------------------------------
# Starter 0, solution full marks, planted mistakes partial
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_untouched_starter_scores_zero(tmp_path, name):
    report = assignments.grade(_start(tmp_path, name, solution=False))
    assert report.max_score == 10.0
    assert report.score == 0.0
    assert not any(r.passed for r in report.results)
    first = report.results[0]
    assert "not written yet" in first.message, first.message


@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks(tmp_path, name):
    report = assignments.grade(_start(tmp_path, name, solution=True))
    failed = [(r.name, r.message) for r in report.results if not r.passed]
    assert not failed, failed
    assert report.score == report.max_score == 10.0
    assert len(report.results) >= 6


# (assignment, what the mistake is, patch of the solution, the check that must fail,
#  words its message must contain)
MISTAKES = [
    (
        "im2col",
        "col2im overwrites overlapping windows",
        [("stride * wo : stride] += cols6[", "stride * wo : stride] = cols6[")],
        "col2im: the adjoint of im2col",
        ["+=", "several windows", "overlap"],
    ),
    (
        "im2col",
        "col2im crops only one side of the padding",
        [
            (
                "return dxp[:, :, padding : padding + h, padding : padding + w].copy()",
                "return dxp[:, :, :h, :w].copy()",
            )
        ],
        "col2im: the adjoint of im2col",
        ["fails exactly when there is padding", "crops"],
    ),
    (
        "im2col",
        "col2im crops with a[p:-p], empty for p = 0",
        [
            (
                "return dxp[:, :, padding : padding + h, padding : padding + w].copy()",
                "return dxp[:, :, padding:-padding, padding:-padding].copy()",
            )
        ],
        "col2im: the adjoint of im2col",
        ["a[p:-p] is empty when p = 0"],
    ),
    (
        "depthwise",
        "output channel o read from input channel o % C",
        [
            (
                "    wv = w.reshape(c, m, kh, kw)\n    y = np.zeros",
                "    wv = w.reshape(m, c, kh, kw).transpose(1, 0, 2, 3)\n    y = np.zeros",
            ),
        ],
        "depthwise: matches ghostnp's depthwise conv on random inputs",
        ["M > 1", "o // M"],
    ),
    (
        "depthwise",
        "one-sided differences",
        [
            ("            x[idx] = old - eps\n", "            x[idx] = old\n"),
            ("(up - down) / (2.0 * eps)", "(up - down) / eps"),
        ],
        "numerical_gradient: central differences",
        ["one-sided", "central"],
    ),
    (
        "batchnorm",
        "training backward without the two mean terms",
        [
            (
                "dx = inv_std.reshape(1, c, 1, 1) * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)",
                "dx = inv_std.reshape(1, c, 1, 1) * dxhat",
            )
        ],
        "backward, training: the two mean terms (invariances)",
        ["batch mean", "batch variance"],
    ),
    (
        "ghost-module",
        "the intrinsic maps lose the gradient through the cheap operation",
        [("dx1 = dx1 + self.cheap_operation.backward(dx2)", "self.cheap_operation.backward(dx2)")],
        "backward: the intrinsic maps' gradient has both paths",
        ["through the cheap operation", "x1 feeds both"],
    ),
    (
        "bottleneck",
        "squeeze-and-excite forgets that x also feeds the gate",
        [("return dy * g + self.avg_pool.backward(ds)", "return dy * g")],
        "SqueezeExcite: gradient check",
        ["x is used twice"],
    ),
    (
        "bottleneck",
        "the bottleneck's backward drops the shortcut",
        [("return dh + self.shortcut.backward(dy)", "return dh")],
        "GhostBottleneck: dx and every parameter gradient equal ghostnp's",
        ["main path alone", "shortcut"],
    ),
    (
        "counting",
        "a depthwise conv counted with c_in inputs per output",
        [
            (
                "return c_out * h_out * w_out * (c_in // groups) * k * k",
                "return c_out * h_out * w_out * c_in * k * k",
            )
        ],
        "conv_params and conv_macs: hand cases",
        ["depthwise", "c_in / groups"],
    ),
    (
        "counting",
        "batch norm's parameters left out",
        [
            (
                "params = conv_params(c_in, m, k) + 2 * m + conv_params(m, g, dw_size, groups=m) + 2 * g",
                "params = conv_params(c_in, m, k) + conv_params(m, g, dw_size, groups=m)",
            )
        ],
        "ghost_module_counts: hand cases",
        ["batch norm's weight and bias"],
    ),
    (
        "ghostify",
        "the first conv is replaced too",
        [("if i == 0 or not replaceable(conv):", "if not replaceable(conv):")],
        "ghostify: every replaceable conv but the first",
        ["first conv", "raw image"],
    ),
]


@pytest.mark.parametrize(
    "name, what, patch, check, words", MISTAKES, ids=[f"{m[0]}: {m[1]}" for m in MISTAKES]
)
def test_planted_mistake_scores_partial_and_is_named(tmp_path, name, what, patch, check, words):
    report = assignments.grade(_start(tmp_path, name, solution=True, patch=patch))
    assert 0 < report.score < report.max_score, str(report)
    result = _by_name(report)[check]
    assert not result.passed
    for word in words:
        assert word in result.message, (word, result.message)


def test_every_assignment_has_a_planted_mistake():
    assert {m[0] for m in MISTAKES} == set(NAMES)


def test_mistake_in_im2col_keeps_the_forward_points(tmp_path):
    """col2im's '=' spoils only what depends on col2im: the forward checks still pass,
    and the other failures point at the same place."""
    patch = MISTAKES[0][2]
    report = assignments.grade(_start(tmp_path, "im2col", solution=True, patch=patch))
    results = _by_name(report)
    assert results["conv2d_forward: hand examples"].passed
    assert results["im2col: shapes"].passed
    assert "+=" in results["conv2d: matches ghostnp's conv2d on random inputs"].message
    assert report.score == 4.0


# ----------------------------------------------------------------------------------
# The material
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_material_is_well_formed(name):
    a = assignments.get_assignment(name)
    files = {f.name: f for f in assignments.material_files(name)}
    assert set(files) == {"README.md", a.filename}
    text = files[a.filename].read_text()
    regions = solution_regions(text, a.filename)
    assert regions and all(r.hints for r in regions)
    student = student_version(text, a.filename)
    compile(student, a.filename, "exec")
    assert "BEGIN SOLUTION" not in student and "END SOLUTION" not in student
    assert student.count("raise NotImplementedError(") == len(regions)
    lines = text.splitlines()
    for r in regions:  # no solution line survives, and every hint does
        body = [ln for ln in lines[r.begin : r.end - 1] if ln.strip()]
        assert "\n".join(body) not in student
        for hint in r.hints:
            assert hint in student
    readme = files["README.md"].read_text()
    assert "ghostnp assignment grade" in readme


def test_student_version_names_the_function_in_each_stub():
    text = (
        "class A:\n"
        "    def f(\n"
        "        self, x\n"
        "    ):\n"
        "        y = 1\n"
        "        ### HINT: return x plus one\n"
        "        ### BEGIN SOLUTION\n"
        "        return x + y\n"
        "        ### END SOLUTION\n"
    )
    student = student_version(text)
    assert 'raise NotImplementedError("A.f: not written yet (see the HINT above)")' in student
    assert "### HINT: return x plus one" in student and "x + y" not in student
    assert "        y = 1\n" in student
    namespace = {}
    exec(compile(student, "<student>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="A.f"):
        namespace["A"]().f(1)


@pytest.mark.parametrize(
    "text, error",
    [
        ("def f():\n    ### HINT: h\n    ### BEGIN SOLUTION\n    pass\n", "never closed"),
        ("def f():\n    pass\n    ### END SOLUTION\n", "without a"),
        (
            "def f():\n    pass\n    ### HINT: h\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n",
            "inside the region",
        ),
        ("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n", "no ### HINT"),
        ("### HINT: h\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "inside a function"),
        (
            "def f():\n    ### HINT: h\n    ### BEGIN SOLUTION\n    pass\n  ### END SOLUTION\n",
            "not indented like",
        ),
        ("def f():\n    pass  ### BEGIN SOLUTION\n", "stand alone"),
    ],
)
def test_malformed_regions_are_refused_with_the_line(text, error):
    with pytest.raises(ValueError, match=error) as e:
        solution_regions(text, "x.py")
    assert str(e.value).startswith("x.py:")


# ----------------------------------------------------------------------------------
# Hiding
# ----------------------------------------------------------------------------------


def test_every_hidden_name_resolves():
    """The table names where things live; when a module moves, this fails."""
    for name, hidden in HIDDEN.items():
        assert name in NAMES
        for public in hidden:
            resolve(public)  # raises LookupError when the table is out of date


def test_a_submission_calling_the_library_fails_with_a_clear_message(tmp_path):
    folder = _start(tmp_path, "im2col", solution=True)
    path = folder / "conv.py"
    text = path.read_text()
    cut = text.index("def conv2d_forward")
    path.write_text(
        text[:cut]
        + "import ghostnp.functional as F\n\n\n"
        + "def conv2d_forward(x, w, b=None, stride=1, padding=0):\n"
        + "    return F.conv2d_forward(x, w, b, stride, padding)\n\n\n"
        + "def conv2d_backward(dy, cache):\n"
        + "    return F.conv2d_backward(dy, cache)\n"
    )
    report = assignments.grade(folder)
    result = _by_name(report)["conv2d_forward: hand examples"]
    assert not result.passed
    assert "ghostnp.functional.conv2d_forward is unavailable" in result.message
    assert report.score < report.max_score
    # and the library works again afterwards
    with use_backend("numpy"):
        y, _ = F.conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), None, 1, 1)
    assert y[0, 0, 1, 1] == 9.0


def test_importing_a_hidden_kernel_fails_too(tmp_path):
    folder = _start(tmp_path, "im2col", solution=True)
    path = folder / "conv.py"
    path.write_text(
        "from ghostnp.kernels.reference import col2im as _library_col2im\n" + path.read_text()
    )
    path.write_text(
        path.read_text().replace(
            "def col2im(cols, x_shape, kh, kw, stride=1, padding=0):",
            "def col2im(cols, x_shape, kh, kw, stride=1, padding=0):\n"
            "    return _library_col2im(cols, 0, 0, 1, 1, 1, 1)\n\n\n"
            "def _unused(cols, x_shape, kh, kw, stride=1, padding=0):",
        )
    )
    report = assignments.grade(folder)
    assert "ghostnp.kernels.reference.col2im is unavailable" in (
        _by_name(report)["col2im: the adjoint of im2col"].message
    )


def test_subclassing_a_hidden_class_fails(tmp_path):
    folder = _start(tmp_path, "ghost-module", solution=True)
    path = folder / "ghost_module.py"
    path.write_text(
        path.read_text()
        .replace("class GhostModule(Module):", "class GhostModule(ghostnp.nn.GhostModule):")
        .replace("import math\n", "import math\n\nimport ghostnp.nn\n")
    )
    report = assignments.grade(folder)
    assert report.score == 0.0
    assert "ghostnp.nn.GhostModule is unavailable" in report.results[0].message


def test_hiding_is_undone_even_after_an_error():
    original = F.conv2d_forward
    with pytest.raises(RuntimeError, match="boom"), Hiding("im2col"):
        assert F.conv2d_forward is not original
        with pytest.raises(HiddenError):
            F.conv2d_forward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)))
        raise RuntimeError("boom")
    assert F.conv2d_forward is original
    assert ghostnp.functional.conv.conv2d_forward is original


def test_revealed_lifts_the_hiding_only_inside():
    original = ghostnp.nn.GhostModule
    with Hiding("ghost-module") as hiding:
        with pytest.raises(HiddenError, match="ghost-module"):
            ghostnp.nn.GhostModule(4, 4)
        with hiding.revealed():
            assert ghostnp.nn.GhostModule is original
            assert ghostnp.nn.ghost.GhostModule is original
        assert ghostnp.nn.GhostModule is not original
    assert ghostnp.nn.GhostModule is original


def test_an_unimported_module_is_blocked_not_imported():
    name = "ghostnp.kernels.numba"
    was_loaded = name in sys.modules
    with Hiding("im2col"):
        if not was_loaded:
            with pytest.raises(HiddenError, match="may not be imported"):
                from ghostnp.kernels.numba import unfold  # noqa: F401
        else:
            with pytest.raises(HiddenError):
                sys.modules[name].unfold(None, None)
    assert (name in sys.modules) == was_loaded


def test_grading_leaves_backend_and_generator_as_they_were(tmp_path):
    folder = _start(tmp_path, "batchnorm", solution=True)
    backend = get_backend()
    ghostnp.manual_seed(7)
    state = ghostnp.rng.generator().bit_generator.state
    assignments.grade(folder)
    assert get_backend() == backend
    assert ghostnp.rng.generator().bit_generator.state == state


# ----------------------------------------------------------------------------------
# Time limit, exceptions, output
# ----------------------------------------------------------------------------------


def test_a_runaway_loop_fails_its_check_and_grading_goes_on(tmp_path):
    patch = [
        (
            "    return (size + 2 * padding - k) // stride + 1",
            "    while True:\n        try:\n            pass\n        except BaseException:\n            pass",
        )
    ]
    report = assignments.grade(_start(tmp_path, "im2col", True, patch), time_limit=0.5)
    result = _by_name(report)["out_size: output length (floor rule)"]
    assert not result.passed and "stopped after 0.5 s" in result.message
    assert _by_name(report)["im2col: hand examples"].passed is False  # calls out_size too
    assert len(report.results) == 7


def test_time_limit_outside_the_main_thread():
    box = {}

    def worker():
        try:
            call_with_time_limit(lambda: threading.Event().wait(2), 0.2)
        except CheckTimeout as e:
            box["timeout"] = e.args[0]
        box["value"] = call_with_time_limit(lambda: 42, 1.0)

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert box == {"timeout": 0.2, "value": 42}


def test_an_exception_names_the_line_of_the_student_file(tmp_path):
    patch = [
        (
            "    return (size + 2 * padding - k) // stride + 1",
            "    return size.no_such_attribute",
        )
    ]
    folder = _start(tmp_path, "im2col", True, patch)
    line = next(
        i + 1
        for i, ln in enumerate((folder / "conv.py").read_text().splitlines())
        if "no_such_attribute" in ln
    )
    message = assignments.grade(folder).results[0].message
    assert message.startswith("AttributeError:")
    assert f"(conv.py, line {line}, in out_size)" in message


def test_a_file_that_does_not_import_fails_every_check(tmp_path):
    folder = _start(
        tmp_path,
        "counting",
        True,
        [("def out_size(size, k, stride):", "def out_size(size, k, stride)")],
    )
    report = assignments.grade(folder)
    assert report.score == 0.0
    assert all("does not import: SyntaxError" in r.message for r in report.results)


def test_checks_that_depend_on_a_failed_one_are_skipped(tmp_path):
    (tmp_path / "empty.py").write_text("")
    checks = CheckList()

    @checks.add("first", points=1)
    def first(ctx):
        raise NotImplementedError("first: not yet")

    @checks.add("second", points=2, needs="first")
    def second(ctx):  # pragma: no cover - skipped
        raise AssertionError("must not run")

    with pytest.raises(ValueError, match="not registered before"):
        checks.add("third", points=1, needs="fourth")
    report = run_checks("im2col", checks, tmp_path / "empty.py")
    assert [r.passed for r in report.results] == [False, False]
    assert report.results[1].skipped and "needs 'first'" in report.results[1].message
    assert report.to_dict()["max_score"] == 3.0


# ----------------------------------------------------------------------------------
# start and grade through the API
# ----------------------------------------------------------------------------------


def test_start_refuses_a_folder_in_use_unless_forced(tmp_path):
    folder = tmp_path / "hw"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(AssignmentError, match="not empty"):
        assignments.start("im2col", folder)
    written = assignments.start("im2col", folder, force=True)
    assert [p.name for p in written] == ["README.md", "conv.py", MANIFEST]
    assert (folder / "notes.txt").read_text() == "mine"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["assignment"] == "im2col" and manifest["version"] == "student"


def test_usage_errors(tmp_path):
    with pytest.raises(AssignmentError, match="unknown assignment 'nope'; choose one of: im2col"):
        assignments.start("nope", tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        assignments.grade(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssignmentError, match=MANIFEST):
        assignments.grade(tmp_path / "empty")


# ----------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------


def _cli(*args, cwd=None):
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(cwd or "."))
    return subprocess.run(
        [sys.executable, "-m", "ghostnp", "assignment", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_cli_list():
    out = _cli("list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == NAMES
    assert all(len(ln.split(None, 1)) == 2 for ln in lines)


def test_cli_start_and_grade(tmp_path):
    out = _cli("start", "im2col", tmp_path / "hw")
    assert out.returncode == 0, out.stderr
    assert "raise NotImplementedError" in (tmp_path / "hw" / "conv.py").read_text()
    out = _cli("start", "im2col", tmp_path / "key", "--solution")
    assert out.returncode == 0, out.stderr
    assert "### BEGIN SOLUTION" in (tmp_path / "key" / "conv.py").read_text()

    out = _cli("grade", tmp_path / "hw")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "assignment im2col: 0 / 10 points"

    out = _cli("grade", tmp_path / "key", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"assignment", "score", "max_score", "checks"}
    assert doc["assignment"] == "im2col" and doc["score"] == doc["max_score"] == 10.0
    assert isinstance(doc["score"], float)
    for check in doc["checks"]:
        assert set(check) == {"name", "passed", "points", "message"}
        assert check["passed"] is True
    assert sum(c["points"] for c in doc["checks"]) == doc["score"]


def test_cli_json_is_one_document_even_when_the_student_prints(tmp_path):
    folder = _start(
        tmp_path,
        "im2col",
        True,
        [
            (
                "def out_size(size, k, stride, padding):\n",
                "print('hello from import')\n\n\ndef out_size(size, k, stride, padding):\n    print('debugging')\n",
            )
        ],
    )
    out = _cli("grade", folder, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["score"] == 10.0
    assert "hello from import" in out.stderr and "debugging" in out.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["start", "nope", "DIR"], "unknown assignment 'nope'"),
        (["grade", "MISSING"], "no such directory"),
        (["grade", "EMPTY"], f"has no {MANIFEST}"),
        (["start", "im2col", "USED"], "is not empty"),
        (["grade", "EMPTY", "--time-limit", "0"], "--time-limit must be a positive"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(tmp_path, args, message):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "USED").mkdir()
    (tmp_path / "USED" / "x").write_text("")
    out = _cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def test_cli_without_an_action_prints_help_and_exits_2():
    out = _cli()
    assert out.returncode == 2
    assert "list" in out.stdout and "grade" in out.stdout
