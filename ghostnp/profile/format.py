"""Plain-text and Markdown tables, and number formatting, for the profile reports."""

from __future__ import annotations

__all__ = ["fmt_int", "fmt_shape", "fmt_bytes", "text_table", "markdown_table"]


def fmt_int(v: int) -> str:
    """12345678 -> '12,345,678'."""
    return f"{int(v):,}"


def fmt_shape(shape) -> str:
    """(1, 16, 112, 112) -> '1x16x112x112'."""
    return "x".join(str(int(d)) for d in shape)


def fmt_bytes(n: int) -> str:
    """Bytes with a binary unit: 20730032 -> '19.77 MiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"  # pragma: no cover


def text_table(headers, rows, align=None) -> str:
    """Columns padded to their widest cell; ``align`` is a string of 'l'/'r' per column."""
    align = align or "l" * len(headers)
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        parts = [
            c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def markdown_table(headers, rows, align=None) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    align = align or "l" * len(headers)

    def esc(c):
        return str(c).replace("|", "\\|")

    out = ["| " + " | ".join(esc(h) for h in headers) + " |"]
    out.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
