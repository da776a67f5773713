"""Counting what a network computes: per-layer shapes, parameters and operations under
several FLOP conventions, memory estimates, and the Ghost module's arithmetic.

    from ghostnp.profile import summary, compare_conventions
    s = summary(model, (3, 224, 224))                 # convention="paper" by default
    print(s); s.to_markdown(); s.to_csv(); s.to_dict()
    print(compare_conventions(model, (3, 224, 224)))  # paper / full / fvcore / ptflops / thop

Files: ``trace.py`` runs one forward pass with hooks and lists the operations,
``conventions.py`` holds the counting rules, ``summary.py`` the tables,
``memory.py`` the memory estimate, ``ghost_math.py`` Eq. 4/5 and exact Ghost-vs-conv
counts.
"""

from .conventions import CATEGORIES, CONVENTIONS, TOOL_NOTES, Convention, get_convention
from .ghost_math import GhostVsConv, compression_ratio, ghost_vs_conv, speedup_ratio
from .memory import MemoryReport, MemoryRow, memory
from .summary import ConventionComparison, Row, Stage, Summary, compare_conventions, summary
from .trace import Op, trace

__all__ = [
    "summary",
    "Summary",
    "Row",
    "Stage",
    "compare_conventions",
    "ConventionComparison",
    "memory",
    "MemoryReport",
    "MemoryRow",
    "speedup_ratio",
    "compression_ratio",
    "ghost_vs_conv",
    "GhostVsConv",
    "CONVENTIONS",
    "CATEGORIES",
    "TOOL_NOTES",
    "Convention",
    "get_convention",
    "Op",
    "trace",
]
