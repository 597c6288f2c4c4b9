"""How parity results read: the rule, the heads' short names, and the number and text formats.

Shared by the terminal summary (:mod:`rembert_core.parity`) and the HTML report
(:mod:`rembert_core.parity_html`), so both say the same thing the same way.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

__all__ = ["HEADER_WIDTH", "HEAD_LABELS", "RULE", "format_ratio"]

#: The rule every comparison applies, stated once wherever results are shown.
RULE = (
    "Rule: a value a matches its counterpart b when |a - b| <= atol + rtol * |b|, element by element (atol, rtol: "
    "rembert_core.tolerances, by dtype and quantity; doubled between two runs that both round). Each cell is the "
    "worst |a - b| / (atol + rtol * |b|) over the head's outputs, loss and gradients: 1.00 is the bound."
)

#: Short column names of the heads in the summary.
HEAD_LABELS = {
    "base": "base",
    "masked_lm": "masked",
    "causal_lm": "causal",
    "sequence_classification": "seq-cls",
    "multiple_choice": "choice",
    "token_classification": "token",
    "question_answering": "qa",
}

#: Width the terminal summary wraps its prose at.
HEADER_WIDTH = 116


#: Formulas are not split across lines.
_FORMULAS = ("|a - b| <= atol + rtol * |b|", "|a - b| / (atol + rtol * |b|)")


def _wrap(text: str, *, width: int = HEADER_WIDTH, indent: str = "") -> list[str]:
    """``text`` wrapped for the terminal, never inside a formula or at a hyphen."""
    for formula in _FORMULAS:
        text = text.replace(formula, formula.replace(" ", "\u00a0"))
    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)
    return [line.replace("\u00a0", " ") for line in lines]


def format_ratio(value: tuple[float, bool] | None) -> str:
    """A ratio as the summary shows it: two decimals, "<0.01" for tiny ones, "-" when not compared."""
    if value is None:
        return "-"
    ratio, ok = value
    if ratio == float("inf"):
        text = "inf"
    elif ratio < 0.01:
        text = "<0.01"
    elif ratio < 100:
        text = f"{ratio:.2f}"
    else:
        text = f"{ratio:.0f}"
    return text if ok else f"{text}!"


def _join(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
