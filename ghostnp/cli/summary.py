"""``ghostnp summary MODEL``: parameters and multiply-adds per layer.

For GhostNetV3 the table is the train form (parallel branches, as built) and a second
table gives the totals of both forms: the deploy form is the same model after
``model.eval().reparameterize()`` folds every branch group into one convolution.
"""

from __future__ import annotations

import json
import sys

from .common import add_command, model_choices, parse_shape

__all__ = ["add_parser", "run", "forms_of"]


def add_parser(subparsers) -> None:
    """Add ``summary`` and its options to the command line."""
    s = add_command(subparsers, "summary", "parameters and multiply-adds per layer")
    s.add_argument("model", metavar="MODEL", help=f"one of: {model_choices()}")
    s.add_argument(
        "--width",
        type=float,
        default=None,
        help="width multiplier of ghostnet / ghostnetv2 / ghostnetv3 (default: 1.0)",
    )
    s.add_argument("--input", default="3x224x224", help="C x H x W (or N x C x H x W)")
    s.add_argument(
        "--convention",
        choices=["paper", "full"],
        default="paper",
        help="paper: conv + linear multiply-adds; full: every arithmetic operation",
    )
    s.add_argument(
        "--format", choices=["table", "markdown", "csv", "json"], default="table", help="output"
    )
    s.add_argument("--compare", action="store_true", help="also compare FLOP-counting conventions")
    s.set_defaults(func=run)


def _has_deploy_form(model) -> bool:
    """Whether ``reparameterize()`` would change ``model`` (it holds GhostNetV3 branches)."""
    return any(getattr(m, "deployed", None) is False for m in model.modules())


def forms_of(build, shape, convention: str):
    """``{"train": Summary, "deploy": Summary}`` of a re-parameterizable model (GhostNetV3),
    or None for any other; ``build()`` makes a fresh model."""
    from ..profile import summary

    train = build()
    if not _has_deploy_form(train):
        return None
    deploy = build().eval().reparameterize()
    return {
        "train": summary(train, shape, convention=convention),
        "deploy": summary(deploy, shape, convention=convention),
    }


def _forms_table(forms, markdown: bool) -> str:
    from ..profile.format import markdown_table, text_table

    head = ["form", "parameters", f"{forms['train'].count_label} per image"]
    rows = [
        ["train (as built)", f"{forms['train'].total_params:,}", f"{forms['train'].total_macs:,}"],
        [
            "deploy (after reparameterize())",
            f"{forms['deploy'].total_params:,}",
            f"{forms['deploy'].total_macs:,}",
        ],
    ]
    return (markdown_table if markdown else text_table)(head, rows, align="lrr")


def run(args) -> int:
    """Print the summary in the chosen format."""
    from ..models import create_model
    from ..profile import compare_conventions, summary

    shape = parse_shape(args.input)

    def build():
        return create_model(args.model, args.width, in_chans=shape[-3])

    model = build()
    s = summary(model, shape, convention=args.convention)
    forms = forms_of(build, shape, args.convention) if args.format != "csv" else None
    if args.format == "table":
        print(s)
        if forms:
            print()
            print(_forms_table(forms, markdown=False))
        if args.compare:
            print()
            print(compare_conventions(model, shape))
    elif args.format == "markdown":
        print(s.to_markdown())
        if forms:
            print()
            print(_forms_table(forms, markdown=True))
    elif args.format == "csv":
        sys.stdout.write(s.to_csv())
    else:
        doc = s.to_dict()
        if forms:
            doc["forms"] = {
                name: {"total_params": f.total_params, "total_macs": f.total_macs}
                for name, f in forms.items()
            }
        print(json.dumps(doc, indent=2))
    return 0
