"""Copy-paste reproductions: every adapter call is recorded as a line of Python.

The log is reset at the start of each hypothesis example (dropnorm.strategies),
so when a check fails it holds exactly the calls of the failing example, in two
forms:
  snippet()       against dropnorm's own adapter API, runs for any --impl;
  torch_script()  a standalone script (torch and numpy only) for torch.nn and
                  torch-module implementations, or None for other adapters.
"""
from __future__ import annotations

import inspect

import numpy as np

_MAX_EMBED = 256  # elements: larger arrays are described, not embedded
_lines: list[str] = []
_torch_lines: list[str] = []
_impl_spec: list[str] = ["torch"]


def reset(impl_spec: str | None = None) -> None:
    _lines.clear()
    _torch_lines.clear()
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


def record(line: str, torch_line: str | None = None) -> None:
    """Log one adapter call; torch_line is the same call in plain torch, where there is one."""
    _lines.append(line)
    if torch_line is not None:
        _torch_lines.append(torch_line)


def snippet() -> str:
    head = [
        "import numpy as np",
        "from dropnorm.adapters import load",
        f"impl = load({_impl_spec[0]!r})",
    ]
    return "\n".join(head + _lines)


def _torch_namespace() -> list[str]:
    spec = _impl_spec[0]
    if spec == "torch":
        return ["nn = torch.nn"]
    target = spec.split(":", 1)[1]
    if target.endswith(".py"):
        return ["import importlib.util",
                f"_spec = importlib.util.spec_from_file_location('impl_under_test', {target!r})",
                "nn = importlib.util.module_from_spec(_spec)",
                "_spec.loader.exec_module(nn)"]
    return ["import importlib", f"nn = importlib.import_module({target!r})"]


def torch_script() -> str | None:
    """The failing example as a standalone script, or None when the adapter is not torch's."""
    if not _torch_lines or not (_impl_spec[0] == "torch" or _impl_spec[0].startswith("torch-module:")):
        return None
    from dropnorm.adapters import layouts, torch_nn

    helpers = [inspect.getsource(layouts.storage_permutation), inspect.getsource(torch_nn.make_tensor)]
    head = ["import io", "", "import numpy as np", "import torch", "",
            "TORCH_DTYPES = {'float64': torch.float64, 'float32': torch.float32, "
            "'float16': torch.float16, 'bfloat16': torch.bfloat16}", "", ""]
    body = "\n\n\n".join(h.rstrip() for h in helpers)
    calls = _torch_namespace() + _torch_lines
    return "\n".join(head) + body + "\n\n\n" + "\n".join(calls) + "\n"
