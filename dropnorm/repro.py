"""Copy-paste reproductions: every adapter call is recorded as a line of Python.

The log is reset at the start of each hypothesis example (dropnorm.checks), so
when a check fails it holds exactly the calls of the failing example, written
against dropnorm's own adapter API so that the snippet runs for any --impl.
"""
from __future__ import annotations

import numpy as np

_MAX_EMBED = 256  # elements: larger arrays are described, not embedded
_lines: list[str] = []
_impl_spec: list[str] = ["torch"]


def reset(impl_spec: str | None = None) -> None:
    _lines.clear()
    if impl_spec is not None:
        _impl_spec[0] = impl_spec


def array_literal(x: np.ndarray) -> str:
    """Exact Python for a float64 array (repr of a Python float round-trips)."""
    x = np.asarray(x)
    if x.size <= _MAX_EMBED:
        return f"np.array({x.tolist()!r}, dtype=np.float64).reshape({x.shape!r})"
    return f"np.full({x.shape!r}, np.nan)  # {x.size} values not embedded: rerun the pytest command"


def value_literal(v) -> str:
    return array_literal(v) if isinstance(v, np.ndarray) else repr(v)


def record(line: str) -> None:
    _lines.append(line)


def snippet() -> str:
    head = [
        "import numpy as np",
        "from dropnorm.adapters import load",
        f"impl = load({_impl_spec[0]!r})",
    ]
    return "\n".join(head + _lines)
