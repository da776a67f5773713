"""GhostNetV3 (Liu et al. 2024): Ghost modules trained with parallel branches and folded
into one convolution each for inference (structural re-parameterization).

Train form. Where V1 has one conv -> BN, V3 sums several conv -> BN branches, all
reading the same input (shapes for the defaults: 1x1 primary, d x d cheap op, ratio 2):

    x1 = act( sum_{i<3} BN_i(conv1x1_i(x)) )                # primary_rpr_conv.0..2  (N, m, H, W)
    x2 = act( BN_s(dw1x1(x1)) + BN_k(x1)                    # cheap_rpr_scale, cheap_rpr_skip
              + sum_{i<3} BN_i(dw_dxd_i(x1)) )              # cheap_rpr_conv.0..2    (N, m, H, W)
    y  = concat(x1, x2)[:, :oup]            (times the DFC gate when mode="shortcut")

and a stride-2 bottleneck's depthwise k x k conv becomes three k x k depthwise conv -> BN
branches plus a 1x1 stride-2 depthwise conv -> BN (``dw_rpr_conv``, ``dw_rpr_scale``).

Backward. x (or x1) fans out to every branch, so its gradient is the sum of the branch
gradients; each branch sees the same upstream gradient (that of the sum):

    da = act.backward(dy);    dx = sum_i branch_i.backward(da)

Deploy form. In eval mode every branch is linear in its input, and a sum of convolutions
of one input with one geometry is one convolution with the summed kernel. ``fold_branches``
folds each BN into its conv (``fuse_conv_bn_eval``), zero-pads a 1x1 kernel to d x d (the
centre tap is the same computation), writes the BN-only branch as a depthwise identity
kernel (1 at the centre) with its BN folded in, and adds kernels and biases. After
``reparameterize()`` a GhostModuleV3 is a V1/V2 Ghost module whose convs have biases
(``primary_conv.0``, ``cheap_operation.0``) and a stride-2 bottleneck has one ``conv_dw``
with bias; names and state-dict keys are timm's before and after its ``convert_to_deploy()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import numpy as np
from numpy.typing import DTypeLike

from ..errors import LayerStateError
from ..typing import FloatArray
from .ghost import Branch, ConvBnAct, GhostBottleneck, GhostModule, GhostModuleV2
from .inline import InlineOp, Shape, is_empty
from .layers import BatchNorm2d, Conv2d, ReLU
from .module import Module, ModuleList, Parameter, Sequential
from .utils.fusion import fold_bn, fuse_conv_bn_eval

__all__ = [
    "GhostModuleV3",
    "GhostBottleneckV3",
    "BranchSum",
    "Reparameterizable",
    "reparameterize",
    "pad_kernel",
    "identity_kernel",
    "fold_branches",
]

M = TypeVar("M", bound=Module)

NUM_BRANCHES = 3  # parallel k x k conv -> BN branches per group (timm's num_conv_branches)
MODES = ("original", "shortcut")


class BranchSum:
    """y = act(sum_i branch_i(x)); backward: dx = sum_i branch_i.backward(act.backward(dy)).

    Not a Module: the branches stay registered under their owner's names (so state-dict
    keys are timm's) and keep their own caches; this object only says how to run them.
    ``act`` is any module, or None for none.
    """

    def __init__(self, branches: Iterable[Branch], act: Branch | None = None) -> None:
        self.branches = list(branches)
        self.act = act

    def __call__(self, x: FloatArray) -> FloatArray:
        y = self.branches[0](x)
        for branch in self.branches[1:]:
            y = y + branch(x)
        return y if self.act is None else self.act(y)

    def backward(self, dy: FloatArray) -> FloatArray:
        da = dy if self.act is None else self.act.backward(dy)
        dx = self.branches[0].backward(da)
        for branch in self.branches[1:]:
            dx = dx + branch.backward(da)  # x fans out to every branch: gradients add
        return dx


# -- folding ----------------------------------------------------------------------------


def pad_kernel(w: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Zero-pad kernels (C_out, C_in/groups, kh, kw) to (C_out, C_in/groups, *size), centred.

    A conv with the padded kernel and padding larger by (size - k) / 2 computes exactly
    what the small kernel did: the new taps are zeros. Sizes must differ by an even number.
    """
    (kh, kw), (th, tw) = w.shape[2:], tuple(size)
    if (th - kh) % 2 or (tw - kw) % 2 or th < kh or tw < kw:
        raise ValueError(f"pad_kernel: cannot centre a {kh}x{kw} kernel in {th}x{tw}")
    ph, pw = (th - kh) // 2, (tw - kw) // 2
    return np.pad(w, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def identity_kernel(
    channels: int, size: tuple[int, int], dtype: DTypeLike = np.float64
) -> np.ndarray:
    """The depthwise kernel (channels, 1, kh, kw) of the identity: 1 at the centre tap.

    With groups=channels, stride 1 and padding (kh//2, kw//2) the conv returns its input,
    so a BN-only branch BN(x) is BN(conv_identity(x)) and folds like any conv -> BN.
    """
    kh, kw = size
    w = np.zeros((channels, 1, kh, kw), dtype=dtype)
    w[:, 0, kh // 2, kw // 2] = 1.0
    return w


def fold_branches(branches: Iterable[Module], skip: BatchNorm2d | None = None) -> Conv2d:
    """One Conv2d with bias computing, in eval mode, sum_i branch_i(x) (+ skip(x)).

    ``branches``: ConvBnAct members without activation (``conv``, ``bn1``) that read the
    same input with the same stride, groups and channels; kernels may be smaller than the
    largest one if their padding keeps them centred on the same input pixels (a 1x1 with
    padding 0 beside a d x d with padding d//2). ``skip``: a BN-only branch (the identity
    through a BN), allowed when the conv maps C channels to C depthwise at stride 1.
    Returns a new Conv2d in eval mode with the largest branch's geometry.
    """
    fused = []
    for branch in branches:
        if not isinstance(branch, ConvBnAct) or hasattr(branch, "act1"):
            raise TypeError(f"fold_branches: expected conv -> BN branches, got {branch!r}")
        fused.append(fuse_conv_bn_eval(branch.conv, branch.bn1))
    target = max(fused, key=lambda c: c.kernel_size[0] * c.kernel_size[1])
    size = target.kernel_size
    weight = np.zeros(target.weight.shape, dtype=np.float64)
    bias = np.zeros(target.out_channels, dtype=np.float64)
    for conv in fused:
        same = (conv.stride, conv.groups, conv.in_channels, conv.out_channels, conv.dilation)
        want = (target.stride, target.groups, target.in_channels, target.out_channels, (1, 1))
        centred = all(
            p + (t - k) // 2 == tp
            for p, k, t, tp in zip(
                conv.padding, conv.kernel_size, size, target.padding, strict=True
            )
        )
        if same != want or not centred:
            raise ValueError(f"fold_branches: {conv.where} does not line up with {target.where}")
        weight += pad_kernel(conv.weight.data, size)
        if conv.bias is not None:  # always: folding a BN gives the conv a bias
            bias += conv.bias.data
    if skip is not None:
        depthwise = target.groups == target.in_channels == target.out_channels
        if (
            not depthwise
            or target.stride != (1, 1)
            or target.padding != (size[0] // 2, size[1] // 2)
        ):
            raise ValueError(
                f"fold_branches: an identity branch needs a depthwise stride-1 'same' conv, not {target}"
            )
        w, b = fold_bn(identity_kernel(target.out_channels, size), None, skip)
        weight += w
        bias += b
    target.bias = Parameter(bias.astype(target.weight.dtype))
    target.weight.data = weight.astype(target.weight.dtype)
    return target


def reparameterize(module: M) -> M:
    """Switch every GhostNetV3 module inside ``module`` (itself included) to its deploy
    form, in place; returns ``module``. Modules already folded are left alone.

    Raises LayerStateError if any module is in train mode: folding uses each BN's running
    statistics, while in train mode BN normalises with the current batch's statistics.
    """
    training = [m for m in module.modules() if m.training]
    if training:
        raise LayerStateError(
            training[0].where,
            "reparameterize() needs eval mode: it folds every batch norm into a convolution "
            "using the running statistics (running_mean, running_var), but in train mode "
            "batch norm normalises with the statistics of each batch, so the folded model "
            "would compute something else; call .eval() first",
        )
    for m in list(module.modules()):
        if isinstance(m, (GhostModuleV3, GhostBottleneckV3)) and not m.deployed:
            m._fold()
    return module


class Reparameterizable(Module):
    """Adds ``reparameterize()`` (timm's name) and its alias ``convert_to_deploy()`` to a
    module (a mixin: the module's own class comes second)."""

    def reparameterize(self: M) -> M:
        """Fold every GhostNetV3 branch group inside into one conv with bias, in place
        (eval mode only); returns self. See ``ghostnp.nn.ghost_v3.reparameterize``."""
        return reparameterize(self)

    def convert_to_deploy(self: M) -> M:
        """Alias of ``reparameterize()``."""
        return reparameterize(self)


def _check_v3(where: str, mode: str, **kernels: int) -> None:
    if mode not in MODES:
        raise ValueError(f"{where}: mode must be one of {MODES}, got {mode!r}")
    for name, k in kernels.items():
        if not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(
                f"{where}: {name} must be an odd int (a 1x1 branch is centred in it), got {k!r}"
            )


class GhostModuleV3(Reparameterizable, GhostModuleV2):
    """Re-parameterizable Ghost module: (N, inp, H, W) -> (N, oup, H/stride, W/stride).

    Train form (timm's names): ``primary_rpr_conv.0..2`` (k x k conv -> BN, stride),
    ``primary_activation``; ``cheap_rpr_scale`` (depthwise 1x1 -> BN), ``cheap_rpr_skip``
    (BN), ``cheap_rpr_conv.0..2`` (depthwise d x d -> BN), ``cheap_activation``;
    ``primary_conv`` and ``cheap_operation`` are empty until ``reparameterize()`` fills them
    with conv (with bias) -> activation. ``mode="shortcut"`` gates the output with DFC
    attention (``short_conv``, as GhostModuleV2), ``mode="original"`` does not. ``ratio``
    must be 2: the identity branch adds the intrinsic maps to as many ghost maps.
    """

    # the train form's branches (None once reparameterize() has folded them)
    primary_rpr_conv: ModuleList
    primary_activation: Module
    cheap_rpr_skip: BatchNorm2d
    cheap_rpr_conv: ModuleList
    cheap_rpr_scale: ConvBnAct
    cheap_activation: Module

    def __init__(
        self,
        inp: int,
        oup: int,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        relu: bool = True,
        mode: str = "original",
    ) -> None:
        _check_v3("GhostModuleV3", mode, dw_size=dw_size)
        if ratio != 2:
            raise ValueError(
                f"GhostModuleV3: ratio must be 2 (the identity branch adds each intrinsic map "
                f"to one ghost map), got {ratio!r}"
            )
        super().__init__(
            inp, oup, kernel_size, ratio, dw_size, stride, relu, attention=mode == "shortcut"
        )
        self.mode = mode
        self.deployed = False

    def _build(self, kernel_size: int, dw_size: int, stride: int, relu: bool) -> None:
        m = self.init_channels
        self.primary_conv = Sequential()  # deploy-form slots, filled by reparameterize()
        self.cheap_operation = Sequential()
        self.primary_rpr_conv = ModuleList(
            ConvBnAct(self.inp, m, kernel_size, stride, act=False) for _ in range(NUM_BRANCHES)
        )
        self.primary_activation = ReLU() if relu else Sequential()
        self.cheap_rpr_skip = BatchNorm2d(m)
        self.cheap_rpr_conv = ModuleList(
            ConvBnAct(m, m, dw_size, 1, groups=m, act=False) for _ in range(NUM_BRANCHES)
        )
        self.cheap_rpr_scale = ConvBnAct(m, m, 1, 1, groups=m, act=False)
        self.cheap_activation = ReLU() if relu else Sequential()

    def _primary_path(self) -> Branch:
        if self.deployed:
            return self.primary_conv
        return BranchSum(self.primary_rpr_conv, self.primary_activation)

    def _cheap_path(self) -> Branch:
        if self.deployed:
            return self.cheap_operation
        branches = [self.cheap_rpr_scale, self.cheap_rpr_skip, *self.cheap_rpr_conv]
        return BranchSum(branches, self.cheap_activation)

    def _fold(self) -> None:
        primary = fold_branches(self.primary_rpr_conv)
        cheap = fold_branches([*self.cheap_rpr_conv, self.cheap_rpr_scale], self.cheap_rpr_skip)
        self.primary_conv = Sequential(primary, self.primary_activation).train(self.training)
        self.cheap_operation = Sequential(cheap, self.cheap_activation).train(self.training)
        for name in (
            "primary_rpr_conv",
            "primary_activation",
            "cheap_rpr_skip",
            "cheap_rpr_conv",
            "cheap_rpr_scale",
            "cheap_activation",
        ):
            setattr(self, name, None)
        self.deployed = True

    def inline_ops(
        self, x_shape: Shape, y_shape: Shape, shapes: Mapping[str, Shape]
    ) -> list[InlineOp]:
        """Train form: the adds that sum the primary branches and the cheap branches, then
        the concat (V1's concat has no cheap_operation to follow); deploy form: V1/V2's."""
        inherited = super().inline_ops(x_shape, y_shape, shapes)
        if self.deployed:
            return inherited
        n, _, h, w = y_shape
        x1 = (n, self.init_channels, h, w)
        x2 = (n, self.new_channels, h, w)
        cat = (n, self.init_channels + self.new_channels, h, w)
        cheap = "cheap_rpr_conv" if is_empty(self.cheap_activation) else "cheap_activation"
        cheap_branches = 2 + len(self.cheap_rpr_conv)  # scale, skip and the d x d branches
        # declared at one anchor, later entries land first: the adds come before the concat
        own = (
            [InlineOp("concat", y_shape, cat, ("after", cheap))]
            + [InlineOp("add", x2, x2, ("after", "cheap_rpr_conv"))] * (cheap_branches - 1)
            + [InlineOp("add", x1, x1, ("after", "primary_rpr_conv"))]
            * (len(self.primary_rpr_conv) - 1)
        )
        return own + inherited

    def extra_repr(self) -> str:
        form = "deploy" if self.deployed else "train"
        return f"{super().extra_repr()}, mode={self.mode!r}, form={form}"


class GhostBottleneckV3(Reparameterizable, GhostBottleneck):
    """GhostNetV3 bottleneck: GhostBottleneck with GhostModuleV3s and, at stride 2, a
    re-parameterizable depthwise conv (``dw_rpr_conv.0..2`` k x k and ``dw_rpr_scale``
    1x1, each depthwise conv -> BN with the block's stride, summed, no activation).
    After ``reparameterize()`` that sum is ``conv_dw`` (with bias, no ``bn_dw``).
    ``mode="shortcut"`` gives ghost1 DFC attention (GhostNetV3's blocks after the first two).
    """

    dw_rpr_conv: ModuleList | None
    dw_rpr_scale: ConvBnAct | None

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        dw_kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
        mode: str = "original",
    ) -> None:
        _check_v3("GhostBottleneckV3", mode, dw_kernel_size=dw_kernel_size)
        super().__init__(
            in_chs, mid_chs, out_chs, dw_kernel_size, stride, se_ratio, attention=mode == "shortcut"
        )
        self.mode = mode
        self.deployed = False

    def _ghost_module(self, inp: int, oup: int, relu: bool, attention: bool) -> GhostModule:
        return GhostModuleV3(inp, oup, relu=relu, mode="shortcut" if attention else "original")

    def _build_dw(self, mid_chs: int, k: int, stride: int) -> None:
        self.conv_dw = self.bn_dw = None  # deploy form: conv_dw = the folded sum
        if stride > 1:
            self.dw_rpr_conv = ModuleList(
                ConvBnAct(mid_chs, mid_chs, k, stride, groups=mid_chs, act=False)
                for _ in range(NUM_BRANCHES)
            )
            self.dw_rpr_scale = ConvBnAct(mid_chs, mid_chs, 1, stride, groups=mid_chs, act=False)
        else:
            self.dw_rpr_conv = self.dw_rpr_scale = None

    def _main(self) -> list[Branch]:
        if self.deployed or self.dw_rpr_conv is None or self.dw_rpr_scale is None:
            return super()._main()
        dw = BranchSum([self.dw_rpr_scale, *self.dw_rpr_conv])
        main: list[Branch | None] = [self.ghost1, dw, self.se, self.ghost2]
        return [m for m in main if m is not None]

    def _fold(self) -> None:
        if self.dw_rpr_conv is not None and self.dw_rpr_scale is not None:
            self.conv_dw = fold_branches([*self.dw_rpr_conv, self.dw_rpr_scale])
            self.dw_rpr_conv = self.dw_rpr_scale = None
        self.deployed = True

    def inline_ops(
        self, x_shape: Shape, y_shape: Shape, shapes: Mapping[str, Shape]
    ) -> list[InlineOp]:
        """Train form at stride 2: the adds that sum the depthwise branches (scale and
        k x k), besides the residual add."""
        inherited = super().inline_ops(x_shape, y_shape, shapes)
        if self.deployed or self.dw_rpr_conv is None:
            return inherited
        shape = shapes.get(f"dw_rpr_conv.{len(self.dw_rpr_conv) - 1}", y_shape)
        adds = len(self.dw_rpr_conv)  # k x k branches + the 1x1 scale branch, summed
        return [InlineOp("add", shape, shape, ("after", "dw_rpr_conv"))] * adds + inherited

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, form={'deploy' if self.deployed else 'train'}"
