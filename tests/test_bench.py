"""The benchmark harness: smoke tests on tiny shapes and the self-check's refusal, with
fake timings where a decision depends on them. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from ghostnp.bench import (
    ConvShape,
    SelfCheck,
    SelfCheckError,
    col2im_add_at,
    measure,
    run_bench,
    time_call,
    tiny_shapes,
)
from ghostnp.bench.report import headline_rows, markdown, readme_table, replace_section
from ghostnp.bench.runner import RowResult, quick_shapes, self_check
from ghostnp.bench.timing import CpuMeter, Round, quiesce, run_round, spread, time_block
from ghostnp.bench.workloads import (
    col2im_pair,
    ghostnp_conv,
    ghostnp_network,
    reference_col2im,
    torch_conv,
    torch_network,
)
from ghostnp.kernels import reference

MS = 1e-3


def _fake_block(ratio):
    """A block timer: ghostnp takes ``ratio`` ms per call, everything else 1 ms."""

    def timer(name, fn, min_time, warmup):
        fn()  # the callable must run
        return ratio * MS if name == "ghostnp" else 1 * MS

    return timer


def test_run_bench_tiny_returns_tables(torch):
    table = run_bench(tiny=True)
    assert "| layer | in GhostNet | ghostnp ms | PyTorch ms | ratio | range |" in table
    for s in tiny_shapes():
        assert f"| {s.label()} |" in table
    assert "np.add.at" in table
    assert "threads each for Numba, OpenBLAS and PyTorch" in table


def test_measure_takes_shapes_and_reports_fake_ratios(torch):
    shapes = [ConvShape(1, 2, 2, 3, 1, 1, 2, 5, 5, count=0, name="custom")]
    res = measure("tiny", shapes=shapes, rounds=3, block_timer=_fake_block(2.0))
    row = res.get("dw 3x3 s1 2 @5x5")
    assert row is not None and len(row.rounds) == 3
    assert row.ratio().median == pytest.approx(2.0)
    assert res.check is None  # tiny mode does not check unless given a direct timer
    assert "| dw 3x3 s1 2 @5x5 | — | 2.00 | 1.00 | 2.00 | 2.00-2.00 |" in markdown(res)


def test_self_check_passes_on_agreeing_fake_times(torch):
    res = measure(
        "tiny", rounds=2, block_timer=_fake_block(1.0), direct_timer=lambda min_time: 1.2 * MS
    )
    assert res.check is not None and res.check.ok
    assert len(res.check.rows) == 3  # one depthwise, one 1x1, one dense layer
    assert "Passed." in markdown(res)
    res.machine["foreign_median"] = 1.5  # as if other processes had been busy
    assert "**Warning: other processes used a median 1.50 cores" in markdown(res)


def test_self_check_refuses_on_disagreeing_fake_times(torch):
    with pytest.raises(SelfCheckError, match="self-check failed.*x1.5"):
        measure("tiny", rounds=2, block_timer=_fake_block(1.0), direct_timer=lambda t: 1.6 * MS)
    with pytest.raises(SelfCheckError, match="direct 0.600 ms"):
        run_bench(
            tiny=True, rounds=1, block_timer=_fake_block(1.0), direct_timer=lambda t: 0.6 * MS
        )


def test_self_check_logic():
    ok = SelfCheck([("a", 1.0, 1.49), ("b", 1.49, 1.0)])
    assert ok.ok and not ok.failures
    ok.raise_if_failed()
    bad = SelfCheck([("a", 1.0, 1.0), ("b", 1.0, 1.51), ("c", 2.0, 1.0)])
    assert not bad.ok and [k for k, _, _ in bad.failures] == ["b", "c"]
    with pytest.raises(SelfCheckError, match="b: .* c: |b: .*; c: "):
        bad.raise_if_failed()
    with pytest.raises(SelfCheckError, match="no layer"):
        SelfCheck([]).raise_if_failed()
    assert not SelfCheck([("nan", float("nan"), 1.0)]).ok


def test_self_check_reads_rounds():
    from ghostnp.bench.runner import Row

    row = Row("x", "layers", {"ghostnp": None, "torch": None}, direct=lambda t: 0.0)
    res = RowResult(row, [Round({"ghostnp": 1.0, "torch": 2.0, "direct": 4.0}, 0.0)] * 3)
    ((key, harness, direct),) = self_check([res]).rows
    assert (key, harness, direct) == ("x", 2.0, 4.0)
    assert not self_check([res]).ok
    # Pairs are compared round by round: two disturbed rounds (one slowing the harness's
    # block, one the direct measurement) do not decide.
    seconds = [(1.0, 1.0), (1.0, 1.1), (1.0, 0.95), (5.0, 1.0), (1.0, 5.0)]
    res = RowResult(
        row, [Round({"ghostnp": 1.0, "torch": t, "direct": d}, 0.0) for t, d in seconds]
    )
    check = self_check([res])
    assert check.ok and check.rows[0][1:] == (1.0, 1.0)


def test_run_round_alternates_and_repeats_busy_rounds(monkeypatch):
    monkeypatch.setattr(CpuMeter, "stop", lambda self: 0.0)  # a quiet machine
    calls = []
    makers = {"a": lambda: lambda: calls.append("a"), "b": lambda: lambda: calls.append("b")}
    r = run_round(makers, ["b", "a"], 0.0, warmup=0, block_timer=lambda n, f, t, w: f() or 1.0)
    assert calls == ["b", "a"] and r.seconds == {"a": 1.0, "b": 1.0} and r.tries == 1
    loads = iter([0.9, 0.5, 0.7])
    monkeypatch.setattr(CpuMeter, "stop", lambda self: next(loads))
    waits = []
    monkeypatch.setattr("ghostnp.bench.timing.wait_for_quiet", lambda *a: waits.append(a) or 1.5)
    r = run_round(makers, ["a", "b"], 0.0, block_timer=lambda n, f, t, w: 1.0, max_tries=3)
    assert r.foreign == 0.5 and r.tries == 3  # all three were busy: the quietest is kept
    assert len(waits) == 2 and r.waited == 3.0  # it waited for quiet before each repeat


def test_timing_helpers():
    times = time_block(lambda: None, 0.0, warmup=1, min_calls=4)
    assert len(times) >= 4 and all(t >= 0 for t in times)
    assert len(time_call(lambda: None, repeats=2, min_time=0.0)) == 2
    assert quiesce(max_wait=0.05) >= 0
    s = spread([3.0, 1.0, 2.0])
    assert (s.median, s.lo, s.hi) == (2.0, 1.0, 3.0)
    with pytest.raises(ValueError, match="at least one"):
        spread([])
    load = CpuMeter().start().stop()
    assert load is None or load >= 0


def test_twin_computes_what_ghostnp_computes(torch):
    """With ghostnp's weights the twin gives ghostnp's logits: both time the same work."""
    from ghostnp.bench import torch_ghostnet
    from ghostnp.models import ghostnet_100

    model, twin = ghostnet_100().eval(), torch_ghostnet().eval()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), want, rtol=1e-3, atol=1e-4)


def test_workloads_run(torch):
    s = tiny_shapes()[2]
    dx, dw, db = ghostnp_conv(s)()
    assert dx.shape == (s.n, s.cin, s.h, s.w) and dw.shape == (s.cout, 1, s.k, s.k)
    torch_conv(s)()
    for kind in ("train", "infer"):
        ghostnp_network(kind, 2, 32)()
        torch_network(kind, 2, 32)()


def test_quick_shapes_pick_the_headline_layers():
    from ghostnp.bench import ghostnet_conv_shapes

    labels = [s.label() for s in quick_shapes(ghostnet_conv_shapes(16, 224))]
    for want in ("dw 3x3 s1 240 @14x14", "dw 3x3 s1 480 @7x7", "1x1 80->240 @14x14"):
        assert want in labels
    assert "dense 3x3 s1 64->128 @56x56" in labels


def test_col2im_add_at_equals_reference():
    cols = np.random.default_rng(0).standard_normal((2, 3, 3, 2, 4, 3))
    for stride, dilation in ((1, 1), (2, 1), (1, 2)):
        hp = stride * 3 + dilation * 2 + 2
        wp = stride * 2 + dilation * 1 + 2
        args = (hp, wp, stride, stride, dilation, dilation)
        np.testing.assert_allclose(col2im_add_at(cols, *args), reference.col2im(cols, *args))
    c = np.random.default_rng(1).standard_normal((1, 2, 3, 3, 4, 4))
    np.testing.assert_allclose(reference_col2im(c, 9, 9, 2, 1), col2im_add_at(c, 9, 9, 2, 2, 1, 1))
    ref, add_at = col2im_pair(tiny_shapes()[0])
    np.testing.assert_allclose(ref(), add_at(), atol=1e-5)


def test_readme_table_and_sections(torch):
    res = measure("tiny", rounds=1, block_timer=_fake_block(0.5))
    assert headline_rows(res) == []  # tiny layers are none of the headline rows
    assert readme_table(res).startswith("|  | ghostnp / PyTorch | range | target |")
    assert "thread" in readme_table(res).splitlines()[-1]
    text = "a\n<!-- s -->\nold\n<!-- e -->\nb\n"
    assert replace_section(text, "new", "<!-- s -->", "<!-- e -->") == (
        "a\n<!-- s -->\nnew\n<!-- e -->\nb\n"
    )
    with pytest.raises(ValueError, match="markers"):
        replace_section("no markers", "x", "<!-- s -->", "<!-- e -->")


def test_twin_state_dict_matches_ghostnp(torch):
    from ghostnp.bench import torch_ghostnet
    from ghostnp.models import ghostnet_100

    twin = {k: tuple(v.shape) for k, v in torch_ghostnet().state_dict().items()}
    ours = {k: v.shape for k, v in ghostnet_100().state_dict().items()}
    assert twin == ours


def test_cli_refuses_with_a_clear_error_and_exit_1(monkeypatch, capsys):
    import ghostnp.bench
    from ghostnp.cli import main

    def refuse(**kwargs):
        SelfCheck([("dw 3x3 s1 480 @7x7", 1.0, 2.0)]).raise_if_failed()

    monkeypatch.setattr(ghostnp.bench, "run_bench", refuse)
    assert main(["bench"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "self-check failed" in err and "dw 3x3 s1 480 @7x7" in err


def test_harness_runs_numba_on_ghostnps_threading_layer(torch):
    # Numba's threads started by the harness (numba.get_num_threads/set_num_threads)
    # before ghostnp's first kernel call ran on Numba's default OpenMP layer: a second
    # OpenMP runtime beside PyTorch's, which slowed PyTorch's small depthwise layers
    # several-fold. A whole (tiny) run, in a fresh process, must leave the layer ghostnp
    # chooses.
    script = (
        "import numba\n"
        "from ghostnp.bench import measure, tiny_shapes\n"
        "r = measure('tiny', shapes=tiny_shapes()[2:3], rounds=1, threads=2, check=False)\n"
        "print(r.machine['threads']['numba_layer'], numba.threading_layer())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert run.stdout.split() == ["workqueue", "workqueue"]


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_self_check_covers_the_small_depthwise_layer(mode):
    from ghostnp.bench.runner import CHECK_LAYERS, build_rows

    rows = [r for r in build_rows(mode, 2) if r.group == "layers"]
    checked = {r.key for r in rows if r.direct is not None}
    assert "dw 3x3 s1 480 @7x7" in checked and checked == set(CHECK_LAYERS)


def test_cpu_meter_counts_a_waited_child_as_its_own():
    """A measured child process's CPU time is the run's own, not other processes' load."""
    from ghostnp.bench.timing import _own_seconds

    before, own_before = _own_seconds(), os.times()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    subprocess.run([sys.executable, "-c", burn], check=True)
    after, own_after = _own_seconds(), os.times()
    children = (own_after.children_user + own_after.children_system) - (
        own_before.children_user + own_before.children_system
    )
    assert children >= 0.25  # the child burned at least 0.3 s of CPU
    assert after - before >= children - 1e-6  # plus this process's own, which only adds


def test_compile_cost_runs_the_console_script_when_there_is_one(tmp_path, monkeypatch):
    from ghostnp.bench import fresh

    python = tmp_path / "python"
    python.write_text("")
    monkeypatch.setattr(sys, "executable", str(python))
    assert fresh._ghostnp_command() == [str(python), "-m", "ghostnp"]
    script = tmp_path / "ghostnp"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert fresh._ghostnp_command() == [str(script)]


def test_machine_line_names_the_blas_kernels_and_what_chose_them():
    from ghostnp.bench.report import blas_sentence
    from ghostnp.bench.runner import gemm_gflops

    rate = gemm_gflops((8, 16, 32), min_time=0.0)
    assert np.isfinite(rate) and rate > 0
    blas = {"name": "openblas 0.3", "kernels": "Haswell", "coretype": "Haswell", "avx512": True}
    text = blas_sentence({**blas, "gflops": 231.4})
    assert "Haswell kernels" in text and "OPENBLAS_CORETYPE=Haswell" in text
    assert "AVX-512" in text and "231 GFLOP/s" in text
    chosen = blas_sentence({**blas, "coretype": None, "gflops": 400.0})
    assert "OPENBLAS_CORETYPE" not in chosen and "400 GFLOP/s" in chosen
    assert blas_sentence(None) == ""
