"""Assignment ghostify: turn a CNN into its Ghost version, ablate s and d, and train it
with your own SGD.

Complete every gap that raises NotImplementedError (README.md has the details), then run

    ghostnp assignment grade .

ghostnp's layers, its GhostModule, its models (vgg16, resnet56, ...) and
``ghostnp.profile.summary`` are yours to use.
"""

from ghostnp.nn import Conv2d, GhostModule
from ghostnp.profile import summary


def replaceable(conv):
    """True when a Ghost module with the same kernel and stride can stand in for ``conv``:
    a dense conv (groups 1, dilation 1) with an odd square kernel k, 'same' padding k // 2
    on both axes, and the same stride along H and W."""
    ### HINT: read conv.groups, conv.dilation, conv.kernel_size, conv.padding and conv.stride (the
    ### HINT: last four are (h, w) pairs).
    ### BEGIN SOLUTION
    kh, kw = conv.kernel_size
    return (
        conv.groups == 1
        and conv.dilation == (1, 1)
        and kh == kw
        and kh % 2 == 1
        and conv.padding == (kh // 2, kw // 2)
        and conv.stride[0] == conv.stride[1]
    )
    ### END SOLUTION


def ghostify(model, ratio=2, dw_size=3):
    """Replace, in place, every replaceable Conv2d of ``model`` except the first one (in
    ``model.named_modules()`` order) by GhostModule(conv.in_channels, conv.out_channels,
    kernel_size=k, ratio=ratio, dw_size=dw_size, stride=s, relu=False) with the conv's
    kernel k and stride s, cast to the conv's dtype. Returns the list of the paths
    replaced (e.g. ["features.3", "features.7"])."""
    ### HINT: list (path, conv) for the Conv2d modules first (do not change a model while walking
    ### HINT: it); a path "a.b.3" names attribute "3" of the module at "a.b": find that parent in
    ### HINT: dict(model.named_modules()) and setattr(parent, "3", ghost). The first conv sees the image.
    ### BEGIN SOLUTION
    convs = [(p, m) for p, m in model.named_modules() if isinstance(m, Conv2d)]
    parents = dict(model.named_modules())
    replaced = []
    for i, (path, conv) in enumerate(convs):
        if i == 0 or not replaceable(conv):
            continue
        parent, _, name = path.rpartition(".")
        ghost = GhostModule(
            conv.in_channels,
            conv.out_channels,
            kernel_size=conv.kernel_size[0],
            ratio=ratio,
            dw_size=dw_size,
            stride=conv.stride[0],
            relu=False,
        ).astype(conv.weight.data.dtype)
        setattr(parents[parent], name, ghost)
        replaced.append(path)
    return replaced
    ### END SOLUTION


def ablation(build, settings, input_shape):
    """Parameters and MACs of ghostified versions of a model, one per (ratio, dw_size) in
    ``settings``: a list of dicts {"ratio", "dw_size", "params", "macs"}, where
    ``build()`` makes a fresh model and the counts are ``summary(model, input_shape)``'s
    total_params and total_macs."""
    ### HINT: for each (s, d): model = build(); ghostify(model, s, d); summary(model, input_shape).
    ### BEGIN SOLUTION
    rows = []
    for ratio, dw_size in settings:
        model = build()
        ghostify(model, ratio, dw_size)
        s = summary(model, input_shape)
        rows.append(dict(ratio=ratio, dw_size=dw_size, params=s.total_params, macs=s.total_macs))
    return rows
    ### END SOLUTION


class SGD:
    """Stochastic gradient descent with momentum and L2 weight decay (torch.optim.SGD's
    update). For each parameter p (a ghostnp Parameter with .data and .grad):

        d = p.grad + weight_decay * p.data
        b = d                        on the first step (when momentum != 0)
        b = momentum * b + d         on later steps
        p.data -= lr * (b if momentum != 0 else d)

    Parameters whose grad is None are skipped.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers = {}  # id(p) -> momentum buffer

    def zero_grad(self):
        """Forget every parameter's gradient (grad = None)."""
        ### HINT: set p.grad = None for every parameter.
        ### BEGIN SOLUTION
        for p in self.params:
            p.grad = None
        ### END SOLUTION

    def step(self):
        """Update every parameter that has a gradient, in place."""
        ### HINT: follow the class docstring; keep one buffer per parameter in self.buffers (start it
        ### HINT: as a copy of d); change p.data in place or assign a new array.
        ### BEGIN SOLUTION
        for p in self.params:
            if p.grad is None:
                continue
            d = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                b = self.buffers.get(id(p))
                if b is None:
                    b = self.buffers[id(p)] = d.copy()
                else:
                    b *= self.momentum
                    b += d
                d = b
            p.data -= self.lr * d
        ### END SOLUTION


def train_epoch(model, criterion, optimizer, batches):
    """One pass over ``batches`` (pairs x (B, C, H, W), y (B,)): for each, clear the
    gradients, forward, loss, backward and one optimizer step. Returns the list of the
    batch losses (floats), in order."""
    ### HINT: loss = criterion(model(x), y) is a float; model.backward(criterion.backward()) fills
    ### HINT: every p.grad; then optimizer.step().
    ### BEGIN SOLUTION
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        model.backward(criterion.backward())
        optimizer.step()
        losses.append(float(loss))
    return losses
    ### END SOLUTION
