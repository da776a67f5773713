"""Optimizers and lr schedulers: PyTorch as oracle, state dicts, flat form, bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ghostnp.checkpoint import flatten_state, unflatten_state
from ghostnp.errors import StateDictError
from ghostnp.nn import Module, Parameter
from ghostnp.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    StepLR,
    WarmupCosine,
    param_groups_no_decay,
)

SHAPES = [(4, 3, 3, 3), (4,), (2, 5), (1,)]
STEPS = 8
# (step, parameter) pairs whose gradient is None: parameter 2 misses the first step
# (its state starts late), parameter 1 misses a step in the middle
NO_GRAD = {(0, 2), (3, 1)}
RTOL = 1e-12


def _grads(rng, shapes, steps=STEPS, no_grad=NO_GRAD):
    """A fixed sequence of gradients whose scale varies, so amsgrad's max matters."""
    seq = []
    for k in range(steps):
        scale = 10.0 ** rng.uniform(-1, 1)
        seq.append(
            [
                None if (k, i) in no_grad else scale * rng.standard_normal(s)
                for i, s in enumerate(shapes)
            ]
        )
    return seq


def _params(rng, shapes=SHAPES, dtype=np.float64):
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def _torch_params(torch, params):
    return [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]


def _groups(spec, params):
    """``spec`` is a list of (indices, hyper-parameters) or None for one plain group."""
    if spec is None:
        return params
    return [{"params": [params[i] for i in idx], **hp} for idx, hp in spec]


def _run_against_torch(torch, rng, ours_cls, theirs_cls, kwargs, groups=None):
    params = _params(rng)
    tparams = _torch_params(torch, params)
    opt = ours_cls(_groups(groups, params), **kwargs)
    topt = theirs_cls(_groups(groups, tparams), foreach=False, **kwargs)
    for k, grads in enumerate(_grads(rng, SHAPES)):
        for p, tp, g in zip(params, tparams, grads, strict=True):
            p.grad = None if g is None else g.copy()
            tp.grad = None if g is None else torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(params, tparams, strict=True)):
            np.testing.assert_allclose(
                p.data, tp.detach().numpy(), rtol=RTOL, atol=0, err_msg=f"step {k}, param {i}"
            )
    # the state is numbered as torch numbers it, and holds the same values
    ours, theirs = opt.state_dict()["state"], topt.state_dict()["state"]
    assert sorted(ours) == sorted(theirs)
    for i in ours:
        assert set(ours[i]) == set(theirs[i])
        for key, v in ours[i].items():
            ref = theirs[i][key]
            if key == "step":
                assert v == int(ref.item())
            else:
                np.testing.assert_allclose(v, ref.numpy(), rtol=RTOL, atol=0)
    return opt


SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=1e-2),
    "nesterov_weight_decay": dict(lr=0.1, momentum=0.8, weight_decay=5e-4, nesterov=True),
    "maximize": dict(lr=0.1, momentum=0.9, maximize=True),
    "everything": dict(lr=0.03, momentum=0.5, dampening=0.5, weight_decay=0.1, maximize=True),
}

ADAM_CASES = {
    "default": dict(lr=1e-2),
    "weight_decay": dict(lr=1e-2, weight_decay=0.1),
    "amsgrad": dict(lr=1e-2, amsgrad=True),
    "amsgrad_weight_decay_maximize": dict(lr=1e-2, weight_decay=0.05, amsgrad=True, maximize=True),
    "betas_eps": dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6),
}

ADAMW_CASES = {
    "default": dict(lr=1e-2),
    "strong_decay_amsgrad": dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
    "maximize": dict(lr=1e-2, maximize=True),
    "no_decay": dict(lr=1e-2, weight_decay=0.0),
}


# -- PyTorch as oracle ---------------------------------------------------------------
@pytest.mark.parametrize("kwargs", SGD_CASES.values(), ids=SGD_CASES.keys())
def test_sgd_matches_torch(torch, rng, kwargs):
    _run_against_torch(torch, rng, SGD, torch.optim.SGD, kwargs)


@pytest.mark.parametrize("kwargs", ADAM_CASES.values(), ids=ADAM_CASES.keys())
def test_adam_matches_torch(torch, rng, kwargs):
    _run_against_torch(torch, rng, Adam, torch.optim.Adam, kwargs)


@pytest.mark.parametrize("kwargs", ADAMW_CASES.values(), ids=ADAMW_CASES.keys())
def test_adamw_matches_torch(torch, rng, kwargs):
    _run_against_torch(torch, rng, AdamW, torch.optim.AdamW, kwargs)


def test_sgd_param_groups_match_torch(torch, rng):
    groups = [
        ([0, 2], dict(weight_decay=1e-2)),
        ([1, 3], dict(lr=0.5, momentum=0.5, nesterov=True)),
    ]
    opt = _run_against_torch(torch, rng, SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9), groups)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_param_groups_match_torch(torch, rng, name):
    groups = [
        ([3, 0], dict(weight_decay=0.1, amsgrad=True)),
        ([2, 1], dict(lr=5e-2, betas=(0.5, 0.9), weight_decay=0.0)),
    ]
    ours = {"Adam": Adam, "AdamW": AdamW}[name]
    _run_against_torch(torch, rng, ours, getattr(torch.optim, name), dict(lr=1e-2), groups)


def test_sgd_by_hand():
    """Two momentum steps a student can do on paper: b1 = g1, b2 = 0.9 b1 + g2."""
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0, 1.0])
    opt.step()  # b = [1, 1], p = [0.9, -2.1]
    np.testing.assert_allclose(p.data, [0.9, -2.1], rtol=1e-15)
    p.grad = np.array([2.0, 0.0])
    opt.step()  # b = [2.9, 0.9], p = [0.61, -2.19]
    np.testing.assert_allclose(p.data, [0.61, -2.19], rtol=1e-15)


def test_adam_first_step_is_lr_times_sign():
    """After bias correction, Adam's first step is -lr·g/(|g| + ε') ≈ -lr·sign(g)."""
    p = Parameter(np.array([0.0, 0.0, 0.0]))
    opt = Adam([p], lr=0.01, eps=0.0)
    p.grad = np.array([3.0, -0.5, 1e-3])
    opt.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-13)


def test_grads_are_not_modified_and_data_is_updated_in_place(rng):
    for opt_cls, kw in [(SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)), (AdamW, {})]:
        params = _params(rng)
        arrays = [p.data for p in params]
        opt = opt_cls(params, **kw)
        for _ in range(2):
            grads = [rng.standard_normal(p.shape) for p in params]
            for p, g in zip(params, grads, strict=True):
                p.grad = g.copy()
            opt.step()
            for p, g, a in zip(params, grads, arrays, strict=True):
                np.testing.assert_array_equal(p.grad, g)
                assert p.data is a


def test_zero_grad_sets_none_only_for_own_params(rng):
    mine, other = _params(rng)[:2], _params(rng)[0]
    for p in [*mine, other]:
        p.grad = np.ones_like(p.data)
    opt = SGD(mine, lr=0.1)
    opt.zero_grad()
    assert all(p.grad is None for p in mine)
    assert other.grad is not None
    mine[0].grad = np.ones_like(mine[0].data)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(mine[0].grad, 0.0)


# -- float32 -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "opt_cls, kwargs",
    [
        (SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True)),
        (Adam, dict(lr=1e-2, weight_decay=1e-2, amsgrad=True)),
        (AdamW, dict(lr=1e-2, amsgrad=True)),
    ],
    ids=["SGD", "Adam", "AdamW"],
)
def test_float32_params_stay_float32(rng, opt_cls, kwargs):
    params = _params(rng, dtype=np.float32)
    opt = opt_cls(params, **kwargs)
    for k, grads in enumerate(_grads(rng, SHAPES, steps=4)):
        for p, g in zip(params, grads, strict=True):
            # float64 gradients on some steps: the update still follows p.data
            p.grad = None if g is None else g.astype(np.float32 if k % 2 else np.float64)
        opt.step()
    assert all(p.data.dtype == np.float32 for p in params)
    for s in opt.state.values():
        assert all(v.dtype == np.float32 for v in s.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize(
    "ours, name, kwargs",
    [
        (SGD, "SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-2)),
        (Adam, "Adam", dict(lr=1e-2, amsgrad=True, weight_decay=1e-2)),
        (AdamW, "AdamW", dict(lr=1e-2)),
    ],
    ids=["SGD", "Adam", "AdamW"],
)
def test_float32_matches_torch_float32(torch, rng, ours, name, kwargs):
    params = _params(rng, dtype=np.float32)
    tparams = _torch_params(torch, params)
    opt, topt = ours(params, **kwargs), getattr(torch.optim, name)(tparams, foreach=False, **kwargs)
    for grads in _grads(rng, SHAPES, steps=4):
        for p, tp, g in zip(params, tparams, grads, strict=True):
            g32 = None if g is None else g.astype(np.float32)
            p.grad = g32
            tp.grad = None if g32 is None else torch.from_numpy(g32.copy())
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams, strict=True):
        assert tp.dtype == torch.float32
        # float32 arithmetic in a slightly different order: a few ulps apart
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_state_follows_dtype_change(rng):
    p = Parameter(rng.standard_normal((3, 2)))
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones((3, 2))
    opt.step()
    p.data = p.data.astype(np.float32)  # what Module.astype does
    p.grad = np.ones((3, 2), dtype=np.float32)
    opt.step()
    assert p.data.dtype == opt.state[p]["momentum_buffer"].dtype == np.float32


# -- schedulers ----------------------------------------------------------------------
def _sched_pair(torch, make_ours, make_theirs, lrs=(0.1, 0.02)):
    params = _params(np.random.default_rng(0), shapes=[(2,), (3,)])
    opt = SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)], lr=1.0)
    tparams = _torch_params(torch, params)
    topt = torch.optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(tparams, lrs, strict=True)], lr=1.0
    )
    return opt, make_ours(opt), topt, make_theirs(topt)


def _compare_schedules(opt, sched, topt, tsched, steps=20):
    for k in range(steps + 1):
        if k:
            opt.step()  # no grads: nothing moves, but the order is the usual one
            topt.step()
            sched.step()
            tsched.step()
        ours, theirs = sched.get_last_lr(), tsched.get_last_lr()
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0, err_msg=f"step {k}")
        assert [g["lr"] for g in opt.param_groups] == ours
        assert sched.last_epoch == tsched.last_epoch == k


@pytest.mark.parametrize("step_size, gamma", [(3, 0.5), (1, 0.9), (7, 0.1)])
def test_steplr_matches_torch(torch, step_size, gamma):
    _compare_schedules(
        *_sched_pair(
            torch,
            lambda o: StepLR(o, step_size=step_size, gamma=gamma),
            lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=step_size, gamma=gamma),
        )
    )


@pytest.mark.parametrize("T_max, eta_min", [(7, 0.0), (5, 1e-3), (20, 0.0), (25, 0.005)])
def test_cosine_matches_torch(torch, T_max, eta_min):
    _compare_schedules(
        *_sched_pair(
            torch,
            lambda o: CosineAnnealingLR(o, T_max=T_max, eta_min=eta_min),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=T_max, eta_min=eta_min),
        )
    )


def _warmup_cosine_reference(t, base, warmup, total, min_lr):
    """The schedule documented in WarmupCosine's docstring, written out again."""
    if t < warmup:
        return base * (t + 1) / (warmup + 1)
    if t < total:
        progress = (t - warmup) / (total - warmup)
        return min_lr + 0.5 * (base - min_lr) * (1.0 + math.cos(math.pi * progress))
    return min_lr


@pytest.mark.parametrize(
    "warmup, total, min_lr", [(4, 10, 0.0), (5, 17, 1e-3), (0, 8, 0.0), (1, 2, 0.01)]
)
def test_warmup_cosine_matches_formula(warmup, total, min_lr):
    bases = (0.1, 0.4)
    params = _params(np.random.default_rng(0), shapes=[(2,), (3,)])
    opt = SGD([{"params": [p], "lr": b} for p, b in zip(params, bases, strict=True)], lr=1.0)
    sched = WarmupCosine(opt, warmup_steps=warmup, total_steps=total, min_lr=min_lr)
    for t in range(total + 5):
        if t:
            sched.step()
        want = [_warmup_cosine_reference(t, b, warmup, total, min_lr) for b in bases]
        np.testing.assert_allclose(sched.get_last_lr(), want, rtol=RTOL, atol=0, err_msg=f"t={t}")
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()


def test_warmup_cosine_by_hand():
    """warmup 4, total 10, base 1: 0.2, 0.4, 0.6, 0.8, then 1 at t=4, 0.5 at t=7, 0 from t=10."""
    opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    sched = WarmupCosine(opt, warmup_steps=4, total_steps=10)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(12):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    np.testing.assert_allclose(lrs[:5], [0.2, 0.4, 0.6, 0.8, 1.0], rtol=1e-15)
    assert lrs[7] == pytest.approx(0.5, rel=1e-15)
    assert lrs[5] == pytest.approx((1 + math.cos(math.pi / 6)) / 2, rel=1e-15)
    assert lrs[10:] == [0.0, 0.0, 0.0]
    assert all(a > b for a, b in zip(lrs[4:10], lrs[5:11], strict=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda o: StepLR(o, step_size=3, gamma=0.5),
        lambda o: CosineAnnealingLR(o, T_max=6, eta_min=1e-3),
        lambda o: WarmupCosine(o, warmup_steps=3, total_steps=12, min_lr=1e-4),
    ],
    ids=["StepLR", "CosineAnnealingLR", "WarmupCosine"],
)
def test_scheduler_state_dict_round_trip(make):
    def build():
        params = _params(np.random.default_rng(0), shapes=[(2,), (3,)])
        opt = SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]]}], lr=0.3)
        return opt, make(opt)

    opt_a, a = build()
    for _ in range(5):
        a.step()
    sd = a.state_dict()
    assert all(isinstance(v, (int, float, list)) for v in sd.values())
    sd = unflatten_state(flatten_state(sd))
    opt_b, b = build()
    b.load_state_dict(sd)
    assert b.last_epoch == 5 and b.base_lrs == a.base_lrs
    assert [g["lr"] for g in opt_b.param_groups] == a.get_last_lr() == b.get_last_lr()
    for _ in range(10):
        a.step()
        b.step()
        assert a.get_last_lr() == b.get_last_lr()


def test_scheduler_records_initial_lr():
    p = Parameter(np.zeros(2))
    opt = SGD([p], lr=0.2)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert opt.param_groups[0]["initial_lr"] == 0.2 and opt.param_groups[0]["lr"] == 0.1
    # a second scheduler (say, after a restart) starts from the recorded base lr
    assert CosineAnnealingLR(opt, T_max=4).base_lrs == [0.2]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda o: StepLR(o, step_size=0), r"StepLR: invalid step_size=0"),
        (lambda o: StepLR(o, step_size=2.5), r"StepLR: step_size must be an int, got 2.5"),
        (lambda o: StepLR(o, step_size=2, gamma=-1.0), r"StepLR: invalid gamma=-1.0"),
        (lambda o: CosineAnnealingLR(o, T_max=0), r"CosineAnnealingLR: invalid T_max=0"),
        (lambda o: CosineAnnealingLR(o, 5, eta_min=-0.1), r"CosineAnnealingLR: invalid eta_min"),
        (lambda o: WarmupCosine(o, 10, 10), r"WarmupCosine: total_steps=10 must exceed"),
        (lambda o: WarmupCosine(o, -1, 10), r"WarmupCosine: invalid warmup_steps=-1"),
        (lambda o: WarmupCosine(o, 1, 10, min_lr=math.nan), r"WarmupCosine: invalid min_lr=nan"),
    ],
)
def test_scheduler_bad_arguments(make, match):
    opt = SGD([Parameter(np.zeros(2))], lr=0.1)
    with pytest.raises((ValueError, TypeError), match=match):
        make(opt)
    assert opt.param_groups[0]["lr"] == 0.1


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="StepLR: expected a ghostnp Optimizer, got list"):
        StepLR([Parameter(np.zeros(2))], step_size=1)


def test_scheduler_load_rejects_mismatch():
    opt = SGD([Parameter(np.zeros(2))], lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=10)
    sched.step()
    before = sched.state_dict()
    bad = dict(before, base_lrs=[0.1, 0.2], T_max=0)
    with pytest.raises(StateDictError, match=r"2 base lr\(s\) saved(.|\n)*T_max=0"):
        sched.load_state_dict(bad)
    with pytest.raises(StateDictError, match="missing entry 'eta_min'"):
        sched.load_state_dict({k: v for k, v in before.items() if k != "eta_min"})
    assert sched.state_dict() == before
    assert opt.param_groups[0]["lr"] == before["last_lr"][0]


# -- state dicts ---------------------------------------------------------------------
ROUND_TRIP_CASES = {
    "SGD_nesterov": (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    "SGD_plain": (SGD, dict(lr=0.1)),
    "Adam_amsgrad": (Adam, dict(lr=1e-2, amsgrad=True, weight_decay=1e-2)),
    "AdamW": (AdamW, dict(lr=1e-2, betas=(0.8, 0.95))),
}


def _same(a, b, where="sd"):
    """Equal values of the same types, arrays with equal dtype and contents."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def _only_plain_types(x):
    if isinstance(x, dict):
        return all(isinstance(k, (int, str)) and _only_plain_types(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_only_plain_types(v) for v in x)
    return isinstance(x, (np.ndarray, int, float, bool, str))


@pytest.mark.parametrize("case", ROUND_TRIP_CASES.values(), ids=ROUND_TRIP_CASES.keys())
def test_state_dict_round_trip(rng, tmp_path, case):
    opt_cls, kwargs = case
    grads = _grads(rng, SHAPES, steps=6)
    groups = [([0, 1], {}), ([2, 3], dict(lr=0.05, weight_decay=0.0))]
    params_a = _params(rng)
    opt_a = opt_cls(_groups(groups, params_a), **kwargs)

    def feed(params, gs):
        for p, g in zip(params, gs, strict=True):
            p.grad = None if g is None else g.copy()

    for gs in grads[:3]:
        feed(params_a, gs)
        opt_a.step()
    sd = opt_a.state_dict()
    assert _only_plain_types(sd)

    # through an .npz file, read without pickle
    np.savez(tmp_path / "opt.npz", **flatten_state(sd, prefix="optimizer/"))
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        loaded = unflatten_state(f, prefix="optimizer/")
    _same(loaded, sd)

    params_b = [Parameter(p.data) for p in params_a]
    opt_b = opt_cls(_groups(groups, params_b), lr=123.0)  # hyper-parameters come from sd
    opt_b.load_state_dict(loaded)
    _same(opt_b.state_dict(), sd)
    for gs in grads[3:]:
        feed(params_a, gs)
        feed(params_b, gs)
        opt_a.step()
        opt_b.step()
        for pa, pb in zip(params_a, params_b, strict=True):
            np.testing.assert_array_equal(pa.data, pb.data)
    _same(opt_a.state_dict(), opt_b.state_dict())


def test_state_dict_is_a_snapshot(rng):
    params = _params(rng)
    opt = Adam(params, lr=1e-2)
    for p in params:
        p.grad = np.ones_like(p.data)
    opt.step()
    sd = opt.state_dict()
    saved = flatten_state(sd)
    opt.step()
    opt.param_groups[0]["lr"] = 5.0
    _same(flatten_state(sd), saved)
    # and a loaded state is not shared with the dict it came from
    opt.load_state_dict(sd)
    opt.step()
    _same(flatten_state(sd), saved)


def test_state_dict_numbers_params_across_groups_and_skips_empty_state(rng):
    params = _params(rng)
    opt = SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1, momentum=0.9)
    params[3].grad = np.ones(1)
    params[1].grad = np.ones(4)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sorted(sd["state"]) == [1, 3]
    empty = SGD(params, lr=0.1).state_dict()
    assert empty["state"] == {}
    _same(unflatten_state(flatten_state(empty)), empty)


def _snapshot(opt):
    return flatten_state(opt.state_dict())


def test_load_state_dict_rejects_mismatch_and_changes_nothing(rng):
    params = _params(rng)
    opt = SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = rng.standard_normal(p.shape)
    opt.step()
    before = _snapshot(opt)

    # other shapes, same count
    other = [Parameter(np.zeros(s)) for s in [(4, 3, 3, 3), (5,), (2, 5), (1,)]]
    o2 = SGD(other, lr=0.1, momentum=0.9)
    for p in other:
        p.grad = np.ones_like(p.data)
    o2.step()
    with pytest.raises(StateDictError, match=r"parameter 1: momentum_buffer has shape \(5,\)"):
        opt.load_state_dict(o2.state_dict())
    _same(_snapshot(opt), before)

    # fewer parameters
    o3 = SGD(params[:3], lr=0.1, momentum=0.9)
    with pytest.raises(StateDictError, match=r"3 parameter\(s\) saved, 4 in this optimizer"):
        opt.load_state_dict(o3.state_dict())
    # another number of groups
    o4 = SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    with pytest.raises(StateDictError, match=r"got 2 param group\(s\), this optimizer has 1"):
        opt.load_state_dict(o4.state_dict())
    # Adam's state into SGD
    o5 = Adam(params, lr=0.1)
    o5.step()
    with pytest.raises(StateDictError, match=r"unexpected state entry 'exp_avg'"):
        opt.load_state_dict(o5.state_dict())
    # an invalid hyper-parameter, together with a bad shape: both reported
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = -1.0
    sd["state"][0]["momentum_buffer"] = np.zeros(3)
    with pytest.raises(StateDictError, match=r"2 problems(.|\n)*lr=-1.0(.|\n)*shape \(3,\)"):
        opt.load_state_dict(sd)
    with pytest.raises(StateDictError, match="expects a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    _same(_snapshot(opt), before)


# -- the flat form -------------------------------------------------------------------
def test_flatten_unflatten_round_trip_keeps_types():
    state = {
        "state": {0: {"step": 3, "buf": np.arange(6.0).reshape(2, 3)}, 10: {}},
        "param_groups": [
            {"lr": 0.1, "betas": [0.9, 0.999], "amsgrad": False, "params": [0, 10], "tag": "x"},
            {"lr": 1, "params": [], "note": None, "empty": "", "mask": np.array([True, False])},
        ],
        "scalar32": np.arange(3, dtype=np.float32),
        "ints": np.arange(4, dtype=np.int32),
        "zero_d": np.array(2.5),
    }
    flat = flatten_state(state)
    assert all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in flat.items())
    assert "state/#0/step:int" in flat and "param_groups/[0]/lr:float" in flat
    assert flat["state/#0/buf"].shape == (2, 3)
    _same(unflatten_state(flat), state)
    assert unflatten_state({}) == {} and flatten_state({}) == {}


def test_flatten_normalizes_tuples_and_numpy_scalars():
    back = unflatten_state(flatten_state({"b": (0.9, np.float32(0.5)), "n": np.int64(3)}))
    _same(back, {"b": [0.9, 0.5], "n": 3})


def test_unflatten_reads_only_its_prefix():
    flat = {**flatten_state({"a": 1}, prefix="opt/"), "model.weight": np.zeros(2)}
    _same(unflatten_state(flat, prefix="opt/"), {"a": 1})


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        ({"a/b": 1}, ValueError, "key 'a/b' cannot be flattened"),
        ({"a:b": 1}, ValueError, "cannot be flattened"),
        ({"#1": 1}, ValueError, "cannot be flattened"),
        ({1.5: 1}, TypeError, "keys must be str or int"),
        ({"a": {1, 2}}, TypeError, "a holds a set"),
        ({"a": np.array([object()])}, TypeError, "object array"),
    ],
)
def test_flatten_rejects_what_it_cannot_restore(bad, exc, match):
    with pytest.raises(exc, match=match):
        flatten_state(bad)


def test_unflatten_rejects_malformed_keys():
    with pytest.raises(ValueError, match="unknown type tag"):
        unflatten_state({"a:complex": np.array(1.0)})
    with pytest.raises(ValueError, match="has positions"):
        unflatten_state({"a/[0]:int": np.array(1), "a/[2]:int": np.array(2)})
    with pytest.raises(ValueError, match="mixes list positions and dict keys"):
        unflatten_state({"a/[0]:int": np.array(1), "a/b:int": np.array(2)})


# -- param groups without decay ------------------------------------------------------
class _Tiny(Module):
    def __init__(self):
        super().__init__()
        self.conv_weight = Parameter(np.ones((4, 3, 3, 3)))
        self.conv_bias = Parameter(np.ones(4))
        self.bn_weight = Parameter(np.ones(4))
        self.bn_bias = Parameter(np.zeros(4))
        self.fc_weight = Parameter(np.ones((2, 4)))


def test_param_groups_no_decay():
    model = _Tiny()
    groups = param_groups_no_decay(model, 5e-4)
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert groups[0]["params"] == [model.conv_weight, model.fc_weight]
    assert groups[1]["params"] == [model.conv_bias, model.bn_weight, model.bn_bias]
    opt = SGD(groups, lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = np.zeros_like(p.data)
    opt.step()
    assert np.all(model.conv_weight.data < 1) and np.all(model.bn_weight.data == 1)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        param_groups_no_decay(model, -1.0)


# -- bad arguments -------------------------------------------------------------------
def _p(shape=(2,)):
    return Parameter(np.zeros(shape))


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: SGD([_p()], lr=-0.1), ValueError, r"SGD: invalid lr=-0.1"),
        (lambda: SGD([_p()], lr="0.1"), TypeError, r"SGD: lr must be a real number, got '0.1'"),
        (lambda: SGD([_p()], lr=math.inf), ValueError, r"SGD: invalid lr=inf"),
        (lambda: SGD([_p()], lr=0.1, momentum=1.0), ValueError, r"SGD: invalid momentum=1.0"),
        (lambda: SGD([_p()], lr=0.1, momentum=-0.5), ValueError, r"SGD: invalid momentum=-0.5"),
        (lambda: SGD([_p()], lr=0.1, nesterov=True), ValueError, r"SGD: nesterov=True needs"),
        (
            lambda: SGD([_p()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            ValueError,
            r"dampening=0.1",
        ),
        (lambda: SGD([_p()], lr=0.1, weight_decay=-1), ValueError, r"SGD: invalid weight_decay=-1"),
        (
            lambda: SGD([_p()], lr=0.1, nesterov=1),
            TypeError,
            r"SGD: nesterov must be True or False",
        ),
        (lambda: SGD([], lr=0.1), ValueError, r"SGD: got an empty parameter list"),
        (lambda: SGD(iter([]), lr=0.1), ValueError, r"SGD: got an empty parameter list"),
        (lambda: SGD([{"params": []}], lr=0.1), ValueError, r"SGD: got an empty parameter list"),
        (lambda: SGD(_p(), lr=0.1), TypeError, r"SGD: params must be an iterable.*got Parameter"),
        (
            lambda: SGD([_p(), np.zeros(2)], lr=0.1),
            TypeError,
            r"SGD: param group 0, item 1 is ndarray, not a Parameter",
        ),
        (
            lambda: SGD(_Tiny().named_parameters(), lr=0.1),
            TypeError,
            r"item 0 is tuple.*not named_parameters",
        ),
        (
            lambda: SGD([Parameter(np.zeros(2, dtype=np.int64))], lr=0.1),
            TypeError,
            r"SGD: .* has dtype int64",
        ),
        (lambda: SGD([{"lr": 0.1}], lr=0.1), ValueError, r"SGD: param group 0 has no 'params'"),
        (
            lambda: SGD([{"params": [_p()]}, {"params": [_p()], "lr": -2.0}], lr=0.1),
            ValueError,
            r"SGD: invalid lr=-2.0 in param group 1",
        ),
        (lambda: Adam([_p()], lr=-1e-3), ValueError, r"Adam: invalid lr=-0.001"),
        (lambda: Adam([_p()], betas=(1.0, 0.999)), ValueError, r"Adam: invalid beta1=1.0"),
        (lambda: Adam([_p()], betas=(0.9, -0.1)), ValueError, r"Adam: invalid beta2=-0.1"),
        (lambda: Adam([_p()], betas=0.9), TypeError, r"Adam: betas must be a pair"),
        (lambda: Adam([_p()], eps=-1e-8), ValueError, r"Adam: invalid eps=-1e-08"),
        (lambda: AdamW([_p()], weight_decay=-0.01), ValueError, r"AdamW: invalid weight_decay"),
        (lambda: AdamW([_p()], amsgrad="yes"), TypeError, r"AdamW: amsgrad must be True or False"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_duplicate_parameters_are_rejected():
    a, b = _p(), _p((3,))
    with pytest.raises(
        ValueError, match=r"SGD: a parameter of shape \(2,\) appears in param groups 0 and 1"
    ):
        SGD([{"params": [a]}, {"params": [b, a]}], lr=0.1)
    with pytest.raises(
        ValueError, match=r"Adam: param group 0 lists a parameter of shape \(3,\) twice"
    ):
        Adam([b, a, b])


def test_grad_of_wrong_shape_is_named():
    a, b = _p(), _p((3,))
    opt = SGD([a, b], lr=0.1)
    b.grad = np.zeros(4)
    with pytest.raises(
        ValueError, match=r"SGD: parameter 1 has data of shape \(3,\) but a grad of shape \(4,\)"
    ):
        opt.step()
