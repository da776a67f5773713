"""``python -m ghostnp.bench [--full]`` prints the tables; ``_memory IMPL NETWORK`` is the
fresh process that measures the peak memory of one training step (prints JSON)."""

from __future__ import annotations

import json
import sys

from . import run_bench
from .fresh import memory_child


def main(argv: list[str]) -> int:
    if argv[:1] == ["_memory"]:
        print(json.dumps(memory_child(argv[1], argv[2])))
    else:
        print(run_bench(quick="--full" not in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
