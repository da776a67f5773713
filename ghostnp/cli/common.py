"""What the commands share: the error for a bad option, exit codes, help formatting and
the model names the options accept."""

from __future__ import annotations

import argparse

__all__ = [
    "CliError",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "HelpFormatter",
    "add_command",
    "model_choices",
    "parse_shape",
]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a job stopped by Ctrl-C


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" to every option that has a default; an option whose
    default depends on others (None here) says so in its own help text."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def add_command(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand's parser, its help shown in ``ghostnp --help`` and on its own page."""
    return subparsers.add_parser(
        name, help=help_text, description=help_text, formatter_class=HelpFormatter
    )


def model_choices() -> str:
    """The model names, comma-separated, for help texts."""
    from ..models import model_names

    return ", ".join(model_names())


def parse_shape(text: str) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224); also accepts commas."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise CliError(f"--input: expected a shape like 3x224x224, got {text!r}") from None
    if len(dims) not in (3, 4) or min(dims) < 1:
        raise CliError(
            f"--input: expected C x H x W (or N x C x H x W) positive sizes, got {text!r}"
        )
    return dims
