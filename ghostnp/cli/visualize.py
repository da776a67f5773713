"""``ghostnp visualize IMAGE``: draw one Ghost module's intrinsic and ghost maps for a photo.

`visualize_main` is the job (it can be called from Python too); ``add_parser`` and
``run`` are its command line. The model comes from `ghostnp.models.create_model`, the
weights (optional) through `ghostnp.checkpoint.read_weights`, the photo through
`ghostnp.data.load_image`, and the figure from `ghostnp.viz.plot_ghost_maps`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .common import add_command, model_choices

__all__ = ["add_parser", "run", "visualize_main", "DEFAULT_VISUALIZE_MODEL"]

DEFAULT_VISUALIZE_MODEL = "ghostnet_100"


def add_parser(subparsers) -> None:
    """Add ``visualize`` and its options to the command line."""
    v = add_command(subparsers, "visualize", "draw a Ghost module's intrinsic and ghost maps")
    v.add_argument("image", metavar="IMAGE", help="a PNG or JPEG file")
    v.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help=f"one of: {model_choices()} (default: the model of --checkpoint, else ghostnet_100)",
    )
    v.add_argument(
        "--checkpoint",
        default=None,
        help="weights: a ghostnp checkpoint or a .npz/.pth/.pt state dict (default: random)",
    )
    v.add_argument(
        "--layer",
        default=None,
        help="path of a Ghost module (default: the first with at least 8 intrinsic maps)",
    )
    v.add_argument("--out", default="ghost_maps.png", help="PNG to write")
    v.set_defaults(func=run)


def run(args) -> int:
    """Write the figure and say where."""
    out = visualize_main(
        args.image, model=args.model, checkpoint=args.checkpoint, layer=args.layer, out=args.out
    )
    print(f"wrote {out}")
    return 0


class _StopForward(Exception):
    """Raised by a hook once the chosen layer has run: the rest of the network is skipped."""


def _same_network(a: tuple, b: tuple) -> bool:
    """Whether two ``(name, width)`` specs build the same network: ``ghostnet_050`` is
    ``ghostnet`` at width 0.5."""

    def canonical(spec):
        name, width = spec
        found = re.fullmatch(r"(ghostnet(?:v\d)?)_(\d)(\d\d)", name)
        if found:
            return found[1], float(f"{found[2]}.{found[3]}")
        return name, None if width is None else float(width)

    return canonical(a) == canonical(b)


def _model_spec(name, width=None):
    """``(name, width)`` for a model name (width only for the families built at any width);
    unknown names raise ValueError listing the known ones."""
    from ..models import WIDTH_MODELS, model_names

    names = model_names()
    if name not in names:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names)}")
    return name, (None if name not in WIDTH_MODELS else (width or 1.0))


def _shapes_from_state(net, state) -> tuple[int | None, int | None]:
    """(in_chans, num_classes) that the weights in ``state`` were made for: the input
    channels of the model's first conv and the outputs of its last linear layer."""
    mine = net.state_dict()
    convs = [k for k, v in mine.items() if k.endswith("weight") and np.ndim(v) == 4]
    linears = [k for k, v in mine.items() if k.endswith("weight") and np.ndim(v) == 2]
    in_chans = num_classes = None
    if convs and convs[0] in state and np.ndim(state[convs[0]]) == 4:
        in_chans = int(state[convs[0]].shape[1])
    if linears and linears[-1] in state and np.ndim(state[linears[-1]]) == 2:
        num_classes = int(state[linears[-1]].shape[0])
    return in_chans, num_classes


def _label(name, width) -> str:
    return name if width is None else f"{name} (width {width:g})"


def visualize_main(
    image,
    model: str | None = None,
    checkpoint=None,
    layer: str | None = None,
    out="ghost_maps.png",
    size: int = 224,
) -> Path:
    """Draw one Ghost module's intrinsic and ghost maps for an image; the job behind
    ``ghostnp visualize``. Returns the path of the PNG written.

    ``model`` is a name `ghostnp.models.create_model` takes ("ghostnet" and the other
    families at width 1.0); None means the checkpoint's model, else ghostnet_100.
    ``checkpoint`` (optional) is read by `ghostnp.checkpoint.read_weights`: a ghostnp
    checkpoint (``.npz`` from `ghostnp.save_checkpoint` or ``ghostnp train``) or any
    weights file (``.pth``, ``.pt`` or a plain ``.npz`` state dict). The model is built
    for the weights: its input channels and classes follow them, and a checkpoint
    written by ``ghostnp train`` also names its model and width; a ``model`` that is
    another network raises ValueError. A file that cannot be read raises
    FileNotFoundError or WeightsFileError (a ValueError). Without a checkpoint the
    weights are random.

    ``layer`` is a Ghost module's path (``blocks.1.0.ghost1``); by default the first
    with at least 8 intrinsic maps. An unknown path raises ValueError listing valid
    ones. The image is read by `ghostnp.data.load_image` at ``size`` (grey for a
    one-channel model) and, for 3-channel weights from a PyTorch-format file,
    normalised with ImageNet's mean and std as those models were trained. The network
    runs in eval mode up to that layer; `ghostnp.viz.plot_ghost_maps` draws the result
    into ``out``.
    """
    from ..checkpoint import read_weights
    from ..data import IMAGENET_MEAN, IMAGENET_STD, load_image
    from ..files import atomic_write
    from ..grad_mode import no_grad
    from ..models import create_model
    from ..nn.ghost import GhostModule
    from ..nn.record import ghost_paths, record
    from ..viz import plot_ghost_maps

    requested = None if model is None else _model_spec(model)
    name, width = requested or _model_spec(DEFAULT_VISUALIZE_MODEL)
    state, meta = None, None
    if checkpoint is not None:
        state, meta = read_weights(checkpoint)
        config = (meta or {}).get("config")
        if isinstance(config, dict) and config.get("model"):
            saved = _model_spec(config["model"], config.get("width"))
            if requested is not None and not _same_network(requested, saved):
                raise ValueError(
                    f"model {_label(*requested)} disagrees with {checkpoint}, which holds "
                    f"{_label(*saved)}; leave out --model (model=) to use the checkpoint's"
                )
            name, width = saved
    image_path = Path(image)
    if not image_path.is_file():  # before building a large model
        raise FileNotFoundError(f"no image file at {image_path}")

    in_chans, num_classes = 3, 1000
    if state is not None:
        probe = create_model(name, width, in_chans=in_chans, num_classes=num_classes)
        found_chans, found_classes = _shapes_from_state(probe, state)
        in_chans = found_chans or in_chans
        num_classes = found_classes or num_classes
    net = create_model(name, width, in_chans=in_chans, num_classes=num_classes)
    if state is not None:
        try:
            net.load_state_dict(state, strict=True)
        except ValueError as e:  # keys or shapes that do not fit: say which model was tried
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(
                f"the weights in {checkpoint} do not fit {_label(name, width)} ({first}); "
                "choose the model they were made for with model= (--model)"
            ) from e

    modules = dict(net.named_modules())
    paths = ghost_paths(net)
    if not paths:
        raise ValueError(f"model {name!r} has no Ghost module to visualize")
    if layer is None:
        wide = [p for p in paths if modules[p].init_channels >= 8]
        layer = wide[0] if wide else max(paths, key=lambda p: modules[p].init_channels)
    elif not isinstance(modules.get(layer), GhostModule):
        shown = ", ".join(paths[:6])
        raise ValueError(
            f"{layer!r} is not a Ghost module of {name}; valid layers include {shown}, ... "
            f"({len(paths)} in all)"
        )

    x = load_image(image_path, size, channels=in_chans)
    if in_chans == 3 and state is not None and meta is None:  # a PyTorch-format weights file
        mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
        std = np.asarray(IMAGENET_STD, dtype=np.float32)[:, None, None]
        x = (x - mean) / std
    x = x.astype(net.parameters()[0].data.dtype, copy=False)  # float64 models too

    def stop(module, inputs, output):
        raise _StopForward

    net.eval()
    if callable(getattr(net, "reparameterize", None)):
        # GhostNetV3: in the deploy form primary_conv / cheap_operation make the same maps
        net.reparameterize()
    keys = [f"{layer}.primary_conv", f"{layer}.cheap_operation"]
    with record(net, keys) as rec, no_grad():
        handle = modules[layer].register_forward_hook(stop)
        try:
            net(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
    intrinsic, ghost = rec[keys[0]][0], rec[keys[1]][0]

    label = _label(name, width)
    source = "random weights" if checkpoint is None else Path(checkpoint).name
    fig = plot_ghost_maps(
        intrinsic,
        ghost,
        n=8,
        title=f"{label}, {source}: {layer} on {image_path.name} ({size}x{size})",
    )
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
