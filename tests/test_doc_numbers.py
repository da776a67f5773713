"""Numbers the documentation states as facts about ghostnp are recomputed here, so that a
page cannot drift away from what the code does. Each test reads the number from the page
(or notebook) itself and computes it again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ghostnp import functional as F
from ghostnp.gradcheck import numerical_gradient, rel_error

ROOT = Path(__file__).resolve().parent.parent
GRADIENT_CHECKING = ROOT / "docs" / "concepts" / "gradient-checking.md"
NOTEBOOK_2 = ROOT / "notebooks" / "02_backprop_and_gradient_checking.ipynb"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def flipped_kernel_error(padding: int) -> float:
    """Relative error of dx from a conv backward that turns the kernel by 180 degrees,
    checked with an upstream gradient of ones (L = sum(y)) for the page's shapes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    y, cache = F.conv2d_forward(x, w, b, padding=padding)
    turned = cache._replace(w=np.ascontiguousarray(w[:, :, ::-1, ::-1]))
    dx_wrong = F.conv2d_backward(np.ones_like(y), turned)[0]
    dx_right = F.conv2d_backward(np.ones_like(y), cache)[0]
    numeric = numerical_gradient(
        lambda: float(F.conv2d_forward(x, w, b, padding=padding)[0].sum()), x
    )
    assert rel_error(dx_right, numeric) < 1e-8  # the check itself works with ones
    return rel_error(dx_wrong, numeric)


def test_a_turned_kernel_is_caught_even_by_a_constant_upstream_gradient():
    text = _one_line(GRADIENT_CHECKING.read_text(encoding="utf-8"))
    stated = re.search(
        r"For \$x\$ of shape \$\(2, 3, 6, 6\)\$ and a \$\(4, 3, 3, 3\)\$ kernel, the relative "
        r"error of \$\\mathrm\{d\}x\$ with \$g = \\mathbf\{1\}\$ is ([0-9.]+), with padding 1 "
        r"and without",
        text,
    )
    assert stated, "the sentence with the turned kernel's error is not on the page"
    for padding in (0, 1):
        assert f"{flipped_kernel_error(padding):.3f}" == stated.group(1), padding


def test_the_unit_roundoff_is_stated_alike_and_correctly():
    """The page and notebook 2 call u the unit roundoff (half of NumPy's eps) and give
    the same values."""
    page = _one_line(GRADIENT_CHECKING.read_text(encoding="utf-8"))
    assert "machine epsilon $u$" not in page and "unit roundoff $u$" in page
    table = {
        dtype: float(f"{mantissa}e{exponent}")
        for dtype, mantissa, exponent in re.findall(
            r"\| (float64|float32) \| \$([0-9.]+) \\times 10\^\{(-?[0-9]+)\}\$ \|", page
        )
    }
    cells = json.loads(NOTEBOOK_2.read_text(encoding="utf-8"))["cells"]
    notebook = _one_line(
        " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    )
    said = re.search(
        r"unit roundoff `u` = ([0-9.e-]+) in float64, ([0-9.e-]+) in float32", notebook
    )
    assert said, "notebook 2 no longer states the unit roundoff"
    for dtype, from_notebook in [("float64", said.group(1)), ("float32", said.group(2))]:
        u = np.finfo(dtype).eps / 2
        assert f"{u:.1e}" == f"{table[dtype]:.1e}" == f"{float(from_notebook):.1e}", dtype
