"""ghostnp.profile: the paper's numbers for GhostNet 0.5x/1.0x/1.3x, every conv of the
1.0x net against the reference layer table, the CIFAR networks of the paper's Table 3
by closed-form sums, each counting convention on a network small enough to count by
hand, Eq. 4/5 against real Ghost modules, the report formats, the memory estimate, and
that profiling leaves a model exactly as it was."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ghostnp import nn
from ghostnp.kernels import use_backend
from ghostnp.models import create_model
from ghostnp.profile import (
    CONVENTIONS,
    compare_conventions,
    compression_ratio,
    ghost_vs_conv,
    memory,
    speedup_ratio,
    summary,
)

LAYERS_FILE = Path(__file__).parent / "data" / "ghostnet_100_layers.txt"
IMAGENET = (3, 224, 224)
CIFAR = (3, 32, 32)


@pytest.fixture(scope="module", autouse=True)
def numpy_backend():
    """Shapes are all that matter here; the NumPy kernels trace fastest."""
    with use_backend("numpy"):
        yield


@pytest.fixture(scope="module")
def ghostnet_100_full(numpy_backend):
    return summary(create_model("ghostnet_100"), IMAGENET, convention="full", stages=True)


@pytest.fixture(scope="module")
def ghostnet_100_paper(numpy_backend):
    return summary(create_model("ghostnet_100"), IMAGENET, stages=True)


# ----------------------------------------------------------------------------------
# GhostNet at 224 x 224: the paper's FLOPs and parameter counts
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params, macs",
    [
        ("ghostnet_050", 2_587_292, 42_328_152),
        ("ghostnet_130", 7_358_820, 227_003_256),
    ],
)
def test_ghostnet_widths_reproduce_the_paper(name, params, macs):
    s = summary(create_model(name), IMAGENET)
    assert s.total_macs == macs
    assert s.total_params == params
    assert sum(r.params for r in s.rows) == params


def test_ghostnet_100_totals(ghostnet_100_paper):
    s = ghostnet_100_paper
    assert s.total_macs == 141_150_512
    assert s.total_params == 5_182_508
    assert sum(r.params for r in s.rows) == 5_182_508
    conv = sum(r.macs for r in s.rows if r.type == "Conv2d")
    linear = sum(r.macs for r in s.rows if r.type == "Linear")
    assert (conv, linear) == (139_870_512, 1_280_000)
    assert sum(r.type == "Conv2d" for r in s.rows) == 95
    assert sum(r.type == "BatchNorm2d" for r in s.rows) == 80
    assert s.input_shape == (1, 3, 224, 224)
    assert s.convention == "paper"


def read_layer_table(path):
    """name cin cout k s groups hin hout params MACs, one conv or linear per line."""
    rows = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("---"):
            continue
        name, *nums = line.split()
        cin, cout, k, s, groups, hin, hout, params, macs = map(int, nums)
        rows[name] = dict(
            cin=cin,
            cout=cout,
            k=k,
            s=s,
            groups=groups,
            hin=hin,
            hout=hout,
            params=params,
            macs=macs,
        )
    return rows


def test_every_conv_and_linear_matches_the_reference_layer_table(ghostnet_100_paper):
    table = read_layer_table(LAYERS_FILE)
    assert len(table) == 96  # the 95 convs (conv_head among them) and the classifier
    rows = {r.name: r for r in ghostnet_100_paper.rows if r.type in ("Conv2d", "Linear")}
    assert set(rows) == set(table)
    model = create_model("ghostnet_100")
    modules = dict(model.named_modules())
    for name, ref in table.items():
        row, m = rows[name], modules[name]
        assert (row.params, row.macs) == (ref["params"], ref["macs"]), name
        if isinstance(m, nn.Conv2d):
            got = (m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.groups)
            assert got == (ref["cin"], ref["cout"], ref["k"], ref["s"], ref["groups"]), name
            assert row.output_shape[2] == ref["hout"], name
    assert sum(r["macs"] for r in table.values()) == 141_150_512
    assert (
        sum(r["params"] for r in table.values())
        + sum(r.params for r in ghostnet_100_paper.rows if r.type == "BatchNorm2d")
        == 5_182_508
    )


def test_ghostnet_stages_sum_to_the_totals(ghostnet_100_paper, ghostnet_100_full):
    for s in (ghostnet_100_paper, ghostnet_100_full):
        names = [st.name for st in s.stages]
        assert names[:3] == ["conv_stem", "bn1", "act1"]
        assert names[3:13] == [f"blocks.{i}" for i in range(10)]
        assert names[13:] == [
            "global_pool",
            "conv_head",
            "act2",
            "flatten",
            "dropout",
            "classifier",
        ]
        assert sum(st.macs for st in s.stages) == s.total_macs
        assert sum(st.params for st in s.stages) == s.total_params
        assert sum(st.layers for st in s.stages) == len(s.rows)
    by = {st.name: st for st in ghostnet_100_paper.stages}
    # a stage's output is its module's output, not its last layer's
    assert by["blocks.0"].output_shape == (1, 16, 112, 112)
    assert by["blocks.8"].output_shape == (1, 160, 7, 7)
    assert by["blocks.9"].output_shape == (1, 960, 7, 7)
    assert by["blocks.6"].params == sum(
        r.params for r in ghostnet_100_paper.rows if r.name.startswith("blocks.6.")
    )


def test_full_rows_include_the_inline_ops_in_execution_order(ghostnet_100_full, ghostnet_100_paper):
    names = [r.name for r in ghostnet_100_full.rows]
    block = [n for n in names if n.startswith("blocks.3.0")]
    assert (
        block.index("blocks.3.0.ghost1:concat")
        == block.index("blocks.3.0.ghost1.cheap_operation.2") + 1
    )
    assert block.index("blocks.3.0.se:mul") > block.index("blocks.3.0.se.gate")
    assert block[-1] == "blocks.3.0:add"
    rows = {r.name: r for r in ghostnet_100_full.rows}
    # concat holds all m * ratio maps; the block's add works on its output
    assert rows["blocks.3.0.ghost1:concat"].output_shape == (1, 72, 56, 56)
    assert rows["blocks.3.0:add"].macs == 40 * 28 * 28
    assert rows["blocks.3.0.se:mul"].macs == 72 * 28 * 28
    # the paper's table lists the layers only
    assert all(":" not in r.name for r in ghostnet_100_paper.rows)
    assert len(names) == len(ghostnet_100_paper.rows) + sum(":" in n for n in names)


# ----------------------------------------------------------------------------------
# Conventions: the comparison on GhostNet 1.0x, and every rule on a tiny network
# ----------------------------------------------------------------------------------


def test_compare_conventions_on_ghostnet_100():
    c = compare_conventions(create_model("ghostnet_100"), IMAGENET)
    assert c.totals == {
        "paper": 141_150_512,
        "full": 148_768_768,
        "fvcore": 148_777_264,
        "ptflops": 151_228_112,
        "thop": 155_858_544,
    }
    # the figures users of the reference code meet: ~148M, ~151M, 154-156M
    assert 147e6 < c.totals["fvcore"] < 149e6
    assert 150e6 < c.totals["ptflops"] < 152e6
    assert 154e6 < c.totals["thop"] < 156e6
    bn = {k: v["batch norm"] for k, v in c.by_category.items()}
    bn_elements = bn["full"]  # 1 per element under "full"
    assert bn == {
        "paper": 0,
        "full": bn_elements,
        "fvcore": 2 * bn_elements,
        "ptflops": 2 * bn_elements,
        "thop": 4 * bn_elements,
    }
    assert all(v["conv"] >= 139_870_512 for v in c.by_category.values())
    text = str(c)
    for name in CONVENTIONS:
        assert name in text
    assert "141,150,512" in text and "155,858,544" in text
    assert json.loads(json.dumps(c.to_dict()))["totals"] == c.totals
    assert c.to_markdown().startswith("|")


def tiny_net():
    """conv(3->4, 3x3, pad 1, bias) -> BN -> ReLU -> maxpool 2 -> conv(4->4, dw, no bias)
    -> ReLU6 -> Hardsigmoid -> global avg pool -> flatten -> linear(4->2) on 3x6x6."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=True),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False),
        nn.ReLU6(),
        nn.Hardsigmoid(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


def test_each_convention_counts_the_tiny_net_as_worked_out_by_hand():
    conv1 = 4 * 36 * 27  # 3888 multiply-adds, 144 outputs
    conv2 = 4 * 9 * 9  # depthwise on 3x3 maps: 324
    linear = 4 * 2
    e1, e2 = 4 * 36, 4 * 9  # elements at 6x6 and after pooling to 3x3
    expected = {
        "paper": conv1 + conv2 + linear,
        # bias adds, BN 1, ReLU 1, max 2x2: 3 compares per output, ReLU6 2, hard sigmoid 4,
        # global average over 9 elements, linear bias
        "full": (conv1 + e1) + e1 + e1 + 3 * e2 + conv2 + 2 * e2 + 4 * e2 + e2 + (linear + 2),
        # conv and linear MACs, BN 2 per element, adaptive pool 1 per input element
        "fvcore": conv1 + 2 * e1 + conv2 + e2 + linear,
        # conv bias, BN 2, ReLU/ReLU6 1 per output, pools 1 per input, linear bias once
        "ptflops": (conv1 + e1) + 2 * e1 + e1 + e1 + conv2 + e2 + e2 + (linear + 2),
        # BN 4, adaptive pool (9 + 1) per output, ReLU/ReLU6/max pool/hard sigmoid 0
        "thop": conv1 + 4 * e1 + conv2 + (9 + 1) * 4 + linear,
    }
    got = compare_conventions(tiny_net(), (3, 6, 6)).totals
    assert got == expected
    for name, total in expected.items():
        assert summary(tiny_net(), (3, 6, 6), convention=name).total_macs == total


def small_ghost_net():
    """Two GhostBottlenecks (one with SE and a stride) on 8 x 16 x 16."""
    return nn.Sequential(
        nn.GhostBottleneck(8, 16, 12, 3, stride=2, se_ratio=0.25),
        nn.GhostBottleneck(12, 24, 12, 3, stride=1, se_ratio=0.0),
    )


def test_tools_see_inline_ops_as_the_reference_pytorch_code_would():
    s_full = summary(small_ghost_net(), (8, 16, 16), convention="full")
    inline = [r for r in s_full.rows if ":" in r.name]
    assert [r.type for r in inline] == ["concat", "mul", "concat", "add", "concat", "concat", "add"]
    for conv in ("fvcore", "ptflops", "thop"):
        s = summary(small_ghost_net(), (8, 16, 16), convention=conv)
        assert all(r.macs == 0 for r in s.rows if ":" in r.name), conv
        assert not s.uncounted
    v2 = nn.GhostModuleV2(8, 16)
    rows = {r.type: r for r in summary(v2, (8, 8, 8), convention="fvcore").rows if ":" in r.name}
    assert rows["upsample_nearest2d"].macs == 16 * 8 * 8  # aten::upsample_nearest2d
    assert rows["avg_pool2d"].macs == rows["sigmoid"].macs == rows["mul"].macs == 0
    full = {r.type: r for r in summary(v2, (8, 8, 8), convention="full").rows if ":" in r.name}
    assert full["avg_pool2d"].output_shape == (1, 8, 4, 4)
    assert full["avg_pool2d"].macs == 4 * 8 * 4 * 4
    assert full["sigmoid"].macs == 3 * 16 * 4 * 4
    assert full["mul"].macs == 16 * 8 * 8


def test_unknown_layers_are_reported_not_guessed():
    class Square(nn.Module):
        def forward(self, x):
            return x * x

    model = nn.Sequential(nn.Conv2d(2, 2, 1), Square())
    assert summary(model, (2, 4, 4)).uncounted == []  # the paper ignores everything else
    s = summary(model, (2, 4, 4), convention="full")
    assert s.uncounted == ["Square"]
    assert "Square" in str(s)
    with pytest.raises(ValueError, match="unknown convention"):
        summary(model, (2, 4, 4), convention="flops")


# ----------------------------------------------------------------------------------
# CIFAR-10 networks of the paper (32 x 32): closed-form sums
# ----------------------------------------------------------------------------------


def conv_macs(cin, cout, k, hw_out):
    return cout * hw_out * hw_out * cin * k * k


def ghost_macs(cin, cout, k, hw_out, s=2, d=3):
    m = math.ceil(cout / s)
    return conv_macs(cin, m, k, hw_out) + m * (s - 1) * hw_out * hw_out * d * d


def resnet56_layers():
    """(cin, cout, output size) of every 3x3 conv after the first."""
    layers, cin = [], 16
    for planes, size in ((16, 32), (32, 16), (64, 8)):
        for _ in range(9):  # nine basic blocks of two convs
            layers.append((cin, planes, size))
            layers.append((planes, planes, size))
            cin = planes
    return layers


VGG16_LAYERS = [  # (cin, cout, output size) after the first conv
    (64, 64, 32),
    (64, 128, 16),
    (128, 128, 16),
    (128, 256, 8),
    (256, 256, 8),
    (256, 256, 8),
    (256, 512, 4),
    (512, 512, 4),
    (512, 512, 4),
    (512, 512, 2),
    (512, 512, 2),
    (512, 512, 2),
]


def cifar_expected():
    first, fc_res, fc_vgg = conv_macs(3, 16, 3, 32), 64 * 10, 512 * 10
    vgg_first = conv_macs(3, 64, 3, 32)
    return {
        "resnet56": first + sum(conv_macs(a, b, 3, s) for a, b, s in resnet56_layers()) + fc_res,
        "ghost_resnet56": first
        + sum(ghost_macs(a, b, 3, s) for a, b, s in resnet56_layers())
        + fc_res,
        "vgg16": vgg_first + sum(conv_macs(a, b, 3, s) for a, b, s in VGG16_LAYERS) + fc_vgg,
        "ghost_vgg16": vgg_first + sum(ghost_macs(a, b, 3, s) for a, b, s in VGG16_LAYERS) + fc_vgg,
    }


@pytest.mark.parametrize(
    "name, macs, params, paper_macs, paper_params",
    [
        ("resnet56", 125_485_696, 853_018, 125e6, 0.85e6),
        ("ghost_resnet56", 65_286_784, 442_186, 63e6, 0.43e6),
        ("vgg16", 313_201_664, 14_728_266, 313e6, 15e6),
        ("ghost_vgg16", 158_437_376, 7_396_778, 158e6, 7.7e6),
    ],
)
def test_cifar_networks_match_closed_forms_and_the_paper(
    name, macs, params, paper_macs, paper_params
):
    s = summary(create_model(name), CIFAR)
    assert s.total_macs == cifar_expected()[name] == macs
    assert s.total_params == params
    # The paper's Table 3 rounds; Ghost-ResNet-56's 63M is what the primary convs alone
    # give (the d x d cheap convs add 2.3M more on 16-64 channel maps), hence 4% here.
    assert s.total_macs == pytest.approx(paper_macs, rel=0.05)
    assert s.total_params == pytest.approx(paper_params, rel=0.05)


def test_ghost_resnet56_primary_convs_alone_give_the_papers_63m():
    s = summary(create_model("ghost_resnet56"), CIFAR)
    cheap = sum(r.macs for r in s.rows if ".cheap_operation." in r.name)
    assert s.total_macs - cheap == 62_964_352


# ----------------------------------------------------------------------------------
# Ghost arithmetic: Eq. 4/5 and exact counts against real modules
# ----------------------------------------------------------------------------------


def test_speedup_and_compression_ratios():
    assert speedup_ratio(80, 1, 3, 2) == pytest.approx(80 / (40 + 4.5))
    assert round(speedup_ratio(80, 1, 3, 2), 2) == 1.80
    assert compression_ratio(80, 160, 1, 3, 2) == pytest.approx(speedup_ratio(80, 1, 3, 2))
    for c, k, d, s in [(16, 3, 3, 2), (64, 3, 3, 4), (512, 3, 3, 3)]:
        r = speedup_ratio(c, k, d, s)
        assert r < s and r == pytest.approx(s * c / (s + c - 1), rel=0.01 * s)
    assert speedup_ratio(4096, 3, 3, 2) == pytest.approx(2, rel=1e-3)
    with pytest.raises(ValueError):
        speedup_ratio(16, 3, 3, 1)
    with pytest.raises(ValueError):
        compression_ratio(0, 16, 3, 3, 2)


@pytest.mark.parametrize(
    "c_in, c_out, k, d, s, hw, stride",
    [
        (80, 160, 1, 3, 2, 14, 1),
        (16, 32, 3, 3, 2, 16, 2),
        (24, 30, 3, 5, 3, 9, 1),
        (8, 7, 1, 3, 2, 5, 1),
    ],
)
def test_ghost_vs_conv_equals_what_summary_counts(c_in, c_out, k, d, s, hw, stride):
    g = ghost_vs_conv(c_in, c_out, k, d, s, hw, hw, stride)
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)
    ghost = nn.GhostModule(c_in, c_out, k, s, d, stride)
    sc, sg = summary(conv, (c_in, hw, hw)), summary(ghost, (c_in, hw, hw))
    assert (sc.total_macs, sc.total_params) == (g.conv_macs, g.conv_params)
    assert sg.total_macs == g.ghost_macs
    conv_params = sum(r.params for r in sg.rows if r.type == "Conv2d")  # BN excluded
    assert conv_params == g.ghost_params
    assert sc.rows[0].output_shape[2:] == g.out_hw
    if c_out % s == 0:  # m = n / s exactly: the counts give Eq. 4 exactly
        assert g.speedup == pytest.approx(speedup_ratio(c_in, k, d, s), rel=1e-12)
        assert g.compression == pytest.approx(compression_ratio(c_in, c_out, k, d, s), rel=1e-12)


def test_ghost_speedup_approaches_eq4_and_then_s_as_channels_grow():
    gaps = []
    for c in (3, 8, 64, 512):
        g = ghost_vs_conv(c, 2 * c + 1, 3, 3, 2, 8, 8)  # odd c_out: m = ceil(n / s)
        gaps.append(abs(g.speedup - speedup_ratio(c, 3, 3, 2)))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.01
    assert ghost_vs_conv(512, 1024, 3, 3, 2, 8, 8).speedup == pytest.approx(2, rel=0.01)
    assert "speed-up" in str(ghost_vs_conv(80, 160, 1, 3, 2, 14, 14))


# ----------------------------------------------------------------------------------
# Formats
# ----------------------------------------------------------------------------------


def test_text_markdown_csv_and_dict(ghostnet_100_paper):
    s = ghostnet_100_paper
    text = str(s)
    assert "141,150,512" in text and "5,182,508" in text and "blocks.8" in text
    header = text.splitlines()[0]
    assert header.split() == ["Layer", "Type", "Output", "shape", "Params", "MACs"]

    md = s.to_markdown()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0].startswith("| Layer | Type |") and set(table[1]) <= set("|-: ")
    assert all(line.count("|") == table[0].count("|") for line in table[: len(s.rows) + 2])

    rows = list(csv.DictReader(io.StringIO(s.to_csv())))
    assert len(rows) == len(s.rows)
    assert rows[0] == {
        "name": "conv_stem",
        "type": "Conv2d",
        "output_shape": "1x16x112x112",
        "params": "432",
        "macs": "5419008",
        "activation_bytes": str(16 * 112 * 112 * 4),
    }
    assert sum(int(r["macs"]) for r in rows) == s.total_macs

    d = json.loads(json.dumps(s.to_dict()))
    assert d["total_macs"] == 141_150_512 and d["total_params"] == 5_182_508
    assert d["input_shape"] == [1, 3, 224, 224] and d["convention"] == "paper"
    assert len(d["rows"]) == len(s.rows) and d["rows"][0]["output_shape"] == [1, 16, 112, 112]
    assert [st["name"] for st in d["stages"]][3] == "blocks.0"


def test_batch_size_scales_shapes_and_memory_not_counts():
    one = summary(small_ghost_net(), (8, 16, 16), convention="full")
    four = summary(small_ghost_net(), (4, 8, 16, 16), convention="full")
    assert four.total_macs == one.total_macs
    assert four.input_shape == (4, 8, 16, 16)
    assert all(r.output_shape[0] == 4 for r in four.rows)
    assert four.activation_bytes == 4 * one.activation_bytes
    for bad in [(16, 16), (0, 8, 16, 16), (1, 1, 8, 16, 16)]:
        with pytest.raises(ValueError):
            summary(small_ghost_net(), bad)


# ----------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------


def test_memory_estimate():
    model = small_ghost_net()
    rep = memory(model, (2, 8, 16, 16))
    n = model.num_parameters()
    assert rep.param_bytes == rep.grad_bytes == 4 * n
    assert rep.input_bytes == 2 * 8 * 16 * 16 * 4
    rows = {r.name: r for r in rep.rows}
    assert rows["0.ghost1:concat"].bytes == 2 * 16 * 16 * 16 * 4  # m*ratio maps at 16x16
    assert rows["0:add"].bytes == 2 * 12 * 8 * 8 * 4
    assert rep.activation_bytes == sum(r.bytes for r in rep.rows)
    assert rep.training_bytes == rep.param_bytes * 2 + rep.input_bytes + rep.activation_bytes
    assert (
        memory(model, (2, 8, 16, 16), dtype=np.float64).activation_bytes == 2 * rep.activation_bytes
    )
    assert summary(model, (2, 8, 16, 16)).activation_bytes == sum(
        r.bytes for r in rep.rows if ":" not in r.name
    )
    flat = memory(nn.Sequential(nn.Conv2d(2, 3, 1), nn.Flatten()), (2, 4, 4))
    assert [r.bytes for r in flat.rows] == [3 * 16 * 4, 0]  # a view keeps nothing new
    assert "activations" in str(rep)
    assert json.loads(json.dumps(rep.to_dict()))["training_bytes"] == rep.training_bytes


# ----------------------------------------------------------------------------------
# Profiling leaves the model as it was
# ----------------------------------------------------------------------------------


def test_summary_leaves_mode_statistics_and_pending_backward_untouched(rng):
    def build():
        model = small_ghost_net()
        for _, m in model.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean = rng.standard_normal(m.num_features).astype(np.float32)
                m.running_var = rng.uniform(0.5, 2, m.num_features).astype(np.float32)
        return model

    model = build()
    model.train()
    model[1].eval()  # a mixed mode must come back as it was
    modes = {p: m.training for p, m in model.named_modules()}
    x = rng.standard_normal((2, 8, 16, 16)).astype(np.float32)
    dy = rng.standard_normal((2, 12, 8, 8)).astype(np.float32)

    twin = build()
    twin.load_state_dict(model.state_dict())
    twin.train()
    twin[1].eval()

    model(x)  # forward done, backward pending
    before = model.state_dict()
    ids = {k: id(p.data) for k, p in model.named_parameters()}
    for conv in CONVENTIONS:
        summary(model, (8, 16, 16), convention=conv, stages=True)
    compare_conventions(model, (8, 16, 16))
    memory(model, (8, 16, 16))

    after = model.state_dict()
    assert list(after) == list(before)
    for k in before:
        assert np.array_equal(after[k], before[k]), k
    assert {k: id(p.data) for k, p in model.named_parameters()} == ids
    assert {p: m.training for p, m in model.named_modules()} == modes

    twin(x)
    dx = model.backward(dy)  # uses the caches of the forward before profiling
    dx_twin = twin.backward(dy)
    np.testing.assert_array_equal(dx, dx_twin)
    for (k, p), (_, q) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=k)
