"""Checks of the counting assignment: convolution counts by hand, the paper's ratios,
Ghost modules and bottlenecks, and GhostNet at three widths against the reference
architecture's numbers (the paper's table rounds them) and ghostnp's ``summary``."""

from __future__ import annotations

from ... import models, nn, profile
from ..grader import CheckList, Fail

checks = CheckList()

# GhostNet at 224 x 224, 1000 classes: (params, conv + linear MACs) of the reference
# architecture; the paper prints them rounded as 2.6M/42M, 5.2M/141M, 7.3M/226M
GHOSTNET_COUNTS = {
    0.5: (2_587_292, 42_328_152),
    1.0: (5_182_508, 141_150_512),
    1.3: (7_358_820, 227_003_256),
}


def _is_int(v) -> bool:
    return isinstance(v, int) or (hasattr(v, "is_integer") and float(v).is_integer())


@checks.add("conv_params and conv_macs: hand cases", points=1)
def conv_counts(ctx):
    conv_params, conv_macs = ctx.get("conv_params"), ctx.get("conv_macs")
    cases = [
        ("conv_params(3, 16, 3)", conv_params(3, 16, 3), 432, "16 filters of 3 x 3 x 3"),
        (
            "conv_params(3, 16, 3, bias=True)",
            conv_params(3, 16, 3, bias=True),
            448,
            "plus 16 biases",
        ),
        (
            "conv_params(16, 32, 1)",
            conv_params(16, 32, 1),
            512,
            "a 1x1 conv is a c_in x c_out matrix",
        ),
        (
            "conv_params(16, 16, 3, groups=16)",
            conv_params(16, 16, 3, groups=16),
            144,
            "a depthwise conv has one 3 x 3 filter per channel: c_in / groups = 1 input channel each",
        ),
        (
            "conv_macs(3, 16, 3, 112, 112)",
            conv_macs(3, 16, 3, 112, 112),
            5_419_008,
            "each of the 16 * 112 * 112 output values takes 3 * 3 * 3 multiply-adds",
        ),
        (
            "conv_macs(16, 16, 3, 56, 56, groups=16)",
            conv_macs(16, 16, 3, 56, 56, groups=16),
            451_584,
            "a depthwise conv (groups = c_in) takes k * k inputs of ONE channel per output value, "
            "c_in / groups, not c_in",
        ),
    ]
    for what, got, expected, hint in cases:
        if not _is_int(got) or int(got) != expected:
            raise Fail(f"{what} is {got!r}, expected {expected:,}: {hint}")
    return f"{len(cases)} hand cases"


@checks.add("speedup_ratio and compression_ratio (Eq. 4 and 5)", points=1)
def ratios(ctx):
    speedup, compression = ctx.get("speedup_ratio"), ctx.get("compression_ratio")
    cases = [
        ("speedup_ratio(80, 1, 3, 2)", speedup(80, 1, 3, 2), 80 / 44.5),
        ("speedup_ratio(16, 3, 3, 2)", speedup(16, 3, 3, 2), 144 / 76.5),
        ("speedup_ratio(64, 3, 3, 4)", speedup(64, 3, 3, 4), 576 / 150.75),
        ("compression_ratio(80, 160, 1, 3, 2)", compression(80, 160, 1, 3, 2), 80 / 44.5),
    ]
    for what, got, expected in cases:
        if abs(float(got) - expected) > 1e-9 * expected:
            raise Fail(
                f"{what} is {float(got):.6g}, expected {expected:.6g}: r_s = c k^2 / (c k^2 / s "
                "+ (s - 1) d^2 / s)"
            )
    return (
        "1.798 for GhostNet's 1x1 primary conv at c = 80 (not 2: d x d is not small next to c k^2)"
    )


@checks.add(
    "ghost_module_counts: hand cases", points=2, needs="conv_params and conv_macs: hand cases"
)
def ghost_module(ctx):
    counts = ctx.get("ghost_module_counts")
    # GhostModule(16, 16) at 56 x 56: m = 8; primary 16*8 weights + BN 2*8; cheap 8*9 + BN 2*8
    # GhostModule(24, 7, k=3, ratio=3, d=5) at 10 x 10: m = 3, g = 6; 648 + 6 + 150 + 12
    cases = [  # args, kwargs, (params, macs), batch-norm parameters
        ((16, 16, 56, 56), {}, (232, 627_200), 32),
        ((24, 7, 10, 10), dict(k=3, ratio=3, dw_size=5), (816, 79_800), 18),
    ]
    for args, kwargs, expected, bn in cases:
        got = tuple(counts(*args, **kwargs))
        what = f"ghost_module_counts{args}" + (f" with {kwargs}" if kwargs else "")
        if got != expected:
            hint = ""
            if got[0] == expected[0] - bn:
                hint = ": batch norm's weight and bias count as parameters (2 per channel)"
            elif got[1] != expected[1] and args[1] % kwargs.get("ratio", 2):
                hint = ": m = ceil(c_out / ratio) rounds up"
            raise Fail(f"{what} is {got}, expected {expected} (params, macs){hint}")
    return "2 hand cases"


BLOCKS = [
    ((16, 16, 16, 3, 1, 0.0), 56),  # identity shortcut
    ((16, 48, 24, 3, 2, 0.0), 112),  # stride 2
    ((40, 120, 40, 5, 1, 0.25), 28),  # squeeze-and-excite
    ((80, 480, 112, 3, 1, 0.25), 14),  # width change at stride 1: conv shortcut
]


@checks.add(
    "bottleneck_counts: equal ghostnp's summary", points=1, needs="ghost_module_counts: hand cases"
)
def bottlenecks(ctx):
    counts = ctx.get("bottleneck_counts")
    for args, size in BLOCKS:
        with ctx.reference():
            s = profile.summary(nn.GhostBottleneck(*args), (args[0], size, size))
            ho = s.rows[-1].output_shape[-1]
        expected = (s.total_params, s.total_macs, ho, ho)
        got = tuple(counts(*args, size, size))
        if got != expected:
            i, m, o, k, st, se = args
            what = f"GhostBottleneck({i}, {m}, {o}, k={k}, stride={st}, se_ratio={se}) at {size}x{size}"
            raise Fail(
                f"bottleneck_counts for {what} is {got}, expected {expected} (params, macs, h, w)"
                + _bottleneck_hint(args, got, expected)
            )
    return f"{len(BLOCKS)} blocks (identity and conv shortcuts, stride 2, SE)"


def _bottleneck_hint(args, got, expected) -> str:
    i, _, o, _, stride, se = args
    if got[2:] != expected[2:]:
        return ": the output size is out_size(h, k, stride) when stride > 1"
    if se > 0:
        return ": SE's two 1x1 convs have biases and run on the pooled 1 x 1 map"
    if i != o or stride != 1:
        return ": the shortcut (depthwise k x k conv, BN, 1x1 conv, BN) runs at the output size"
    return ""


def _net_hint(classes, got, expected) -> str:
    params, macs = got
    if macs == expected[1] - 1280 * classes:
        return f": the classifier's 1280 x {classes} multiply-adds count too"
    if params == expected[0] - 1280 * classes - classes:
        return ": the classifier (1280 -> classes, with bias) is missing"
    return ""


def _check_net(ctx, width, resolution=224, classes=1000, expected=None):
    count = ctx.get("count_ghostnet")
    got = tuple(count(width, resolution, classes))
    if expected is None:
        with ctx.reference():
            s = profile.summary(
                models.ghostnet(width, num_classes=classes), (3, resolution, resolution)
            )
        expected = (s.total_params, s.total_macs)
    if got != expected:
        raise Fail(
            f"count_ghostnet({width}, {resolution}, {classes}) is {got}, expected "
            f"({expected[0]:,}, {expected[1]:,}) (params, macs)" + _net_hint(classes, got, expected)
        )


@checks.add(
    "GhostNet 1.0x: 5,182,508 parameters and 141,150,512 MACs",
    points=2,
    needs="bottleneck_counts: equal ghostnp's summary",
)
def net_100(ctx):
    _check_net(ctx, 1.0, expected=GHOSTNET_COUNTS[1.0])
    return "the paper's 5.2M and 141M"


@checks.add(
    "GhostNet 0.5x and 1.3x (make_divisible at work)",
    points=2,
    needs="bottleneck_counts: equal ghostnp's summary",
)
def net_widths(ctx):
    for width in (0.5, 1.3):
        _check_net(ctx, width, expected=GHOSTNET_COUNTS[width])
    return "2,587,292 / 42,328,152 and 7,358,820 / 227,003,256"


@checks.add(
    "other widths, resolutions and class counts equal ghostnp's summary",
    points=1,
    needs="bottleneck_counts: equal ghostnp's summary",
)
def net_other(ctx):
    for width, resolution, classes in ((0.75, 160, 10), (1.0, 97, 100)):
        _check_net(ctx, width, resolution, classes)
    return "0.75x at 160 x 160 (10 classes), 1.0x at 97 x 97 (100 classes)"
