"""``python -m ghostnp`` runs the command line, as the ``ghostnp`` console script does."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
