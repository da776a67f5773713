"""Assignment counting: parameters and multiply-adds of GhostNet, by formula.

Complete every function that raises NotImplementedError (README.md has the formulas),
then run

    ghostnp assignment grade .

Count as the GhostNet paper does. Parameters: every trainable number (convolution and
linear weights and biases, batch norm's weight and bias; not its running statistics).
MACs (multiply-adds) per image: convolutions and linear layers only (batch norm,
activations, pooling and additions are not counted).
"""

from ghostnp.models.ghostnet import GHOSTNET_CFG
from ghostnp.nn import make_divisible

# GHOSTNET_CFG (imported above) is the stage table: one list per stage (blocks.i), one row
# per bottleneck (blocks.i.j):
# [k (kernel of the strided depthwise conv and of the shortcut's), exp (mid channels),
#  out channels, SE ratio, stride]; print it to see the 16 rows.


def out_size(size, k, stride):
    """Output length of a k x k convolution with 'same' padding k // 2 and ``stride``."""
    return (size + 2 * (k // 2) - k) // stride + 1


def conv_params(c_in, c_out, k, groups=1, bias=False):
    """Parameters of a k x k convolution from c_in to c_out channels in ``groups`` groups
    (groups = c_in is a depthwise convolution), plus c_out biases if ``bias``."""
    ### HINT: the weight is (c_out, c_in / groups, k, k): each output channel sees only its
    ### HINT: group's c_in / groups input channels.
    ### BEGIN SOLUTION
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)
    ### END SOLUTION


def conv_macs(c_in, c_out, k, h_out, w_out, groups=1):
    """Multiply-adds of that convolution for one image with an h_out x w_out output."""
    ### HINT: every output value (c_out * h_out * w_out of them) takes one multiply-add per weight
    ### HINT: of its filter: (c_in / groups) * k * k.
    ### BEGIN SOLUTION
    return c_out * h_out * w_out * (c_in // groups) * k * k
    ### END SOLUTION


def speedup_ratio(c, k, d, s):
    """The paper's theoretical speed-up of a Ghost module over an ordinary k x k conv with
    c input channels, ratio s and cheap kernel d (Eq. 4). A float."""
    ### HINT: r_s = c*k*k / ((1/s)*c*k*k + ((s - 1)/s)*d*d): the conv's MACs per output map over
    ### HINT: the Ghost module's (1/s of the maps from the conv, the rest from d x d depthwise ops).
    ### BEGIN SOLUTION
    return c * k * k / ((1 / s) * c * k * k + ((s - 1) / s) * d * d)
    ### END SOLUTION


def compression_ratio(c, n, k, d, s):
    """The paper's parameter compression of a Ghost module making n maps from c (Eq. 5)."""
    ### HINT: r_c = n*c*k*k / ((n/s)*c*k*k + (s - 1)*(n/s)*d*d).
    ### BEGIN SOLUTION
    return n * c * k * k / ((n / s) * c * k * k + (s - 1) * (n / s) * d * d)
    ### END SOLUTION


def ghost_module_counts(c_in, c_out, h_out, w_out, k=1, ratio=2, dw_size=3):
    """(params, macs) of a Ghost module c_in -> c_out whose output is h_out x w_out: the
    primary k x k conv to m = ceil(c_out / ratio) maps and its batch norm, the cheap
    dw_size x dw_size depthwise conv making m * (ratio - 1) maps and its batch norm (no
    conv biases). Both convs produce h_out x w_out maps."""
    ### HINT: m = -(-c_out // ratio) (ceil); g = m * (ratio - 1). params: the two convs (the cheap
    ### HINT: one has groups = m) plus 2 per batch-norm channel (m + g channels); macs: the two convs.
    ### BEGIN SOLUTION
    m = -(-c_out // ratio)
    g = m * (ratio - 1)
    params = conv_params(c_in, m, k) + 2 * m + conv_params(m, g, dw_size, groups=m) + 2 * g
    macs = conv_macs(c_in, m, k, h_out, w_out) + conv_macs(m, g, dw_size, h_out, w_out, groups=m)
    return params, macs
    ### END SOLUTION


def bottleneck_counts(c_in, mid, c_out, k, stride, se_ratio, h, w):
    """(params, macs, h_out, w_out) of a Ghost bottleneck on an h x w input:

    ghost1 = GhostModule(c_in, mid)             at h x w
    conv_dw, bn_dw (stride > 1 only)            depthwise k x k, stride: h_out x w_out
    SE (se_ratio > 0): 1x1 convs with bias, mid -> make_divisible(mid * se_ratio, 4) -> mid,
                       on the pooled 1 x 1 map
    ghost2 = GhostModule(mid, c_out)            at h_out x w_out
    shortcut (unless c_in == c_out and stride == 1): depthwise k x k conv (stride) and BN,
                       1x1 conv c_in -> c_out and BN, at h_out x w_out
    """
    ### HINT: add up the members' params and MACs with the functions above; a batch norm on c
    ### HINT: channels has 2c parameters; h_out = out_size(h, k, stride) when stride > 1, else h.
    ### BEGIN SOLUTION
    params, macs = ghost_module_counts(c_in, mid, h, w)
    ho, wo = h, w
    if stride > 1:
        ho, wo = out_size(h, k, stride), out_size(w, k, stride)
        params += conv_params(mid, mid, k, groups=mid) + 2 * mid
        macs += conv_macs(mid, mid, k, ho, wo, groups=mid)
    if se_ratio > 0:
        r = make_divisible(mid * se_ratio, 4)
        params += conv_params(mid, r, 1, bias=True) + conv_params(r, mid, 1, bias=True)
        macs += conv_macs(mid, r, 1, 1, 1) + conv_macs(r, mid, 1, 1, 1)
    p, m = ghost_module_counts(mid, c_out, ho, wo)
    params, macs = params + p, macs + m
    if not (c_in == c_out and stride == 1):
        params += conv_params(c_in, c_in, k, groups=c_in) + 2 * c_in
        params += conv_params(c_in, c_out, 1) + 2 * c_out
        macs += conv_macs(c_in, c_in, k, ho, wo, groups=c_in) + conv_macs(c_in, c_out, 1, ho, wo)
    return params, macs, ho, wo
    ### END SOLUTION


def count_ghostnet(width=1.0, resolution=224, num_classes=1000):
    """(params, macs) of GhostNet at this width on a resolution x resolution image:

    stem: 3x3 conv, stride 2, 3 -> make_divisible(16 * width, 4), and BN
    the bottlenecks of GHOSTNET_CFG: mid = make_divisible(exp * width, 4),
        out = make_divisible(c * width, 4)
    1x1 conv to make_divisible(960 * width, 4) (960 is the last row's exp), and BN
    global average pool; 1x1 conv with bias to 1280 on the 1 x 1 map
    linear 1280 -> num_classes (with bias)
    """
    ### HINT: walk the stem, every row of every stage with bottleneck_counts (track channels and
    ### HINT: the spatial size), the last 1x1 conv, conv_head and the classifier, adding up as you go.
    ### BEGIN SOLUTION
    stem = make_divisible(16 * width, 4)
    h = out_size(resolution, 3, 2)
    params = conv_params(3, stem, 3) + 2 * stem
    macs = conv_macs(3, stem, 3, h, h)
    chans, w = stem, h
    for stage in GHOSTNET_CFG:
        for k, exp, c, se, s in stage:
            out, mid = make_divisible(c * width, 4), make_divisible(exp * width, 4)
            p, m, h, w = bottleneck_counts(chans, mid, out, k, s, se, h, w)
            params, macs, chans = params + p, macs + m, out
    last = make_divisible(960 * width, 4)
    params += conv_params(chans, last, 1) + 2 * last
    macs += conv_macs(chans, last, 1, h, w)
    params += conv_params(last, 1280, 1, bias=True) + 1280 * num_classes + num_classes
    macs += conv_macs(last, 1280, 1, 1, 1) + 1280 * num_classes
    return params, macs
    ### END SOLUTION
