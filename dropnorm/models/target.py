"""TARGET of `dropnorm audit-model`: what builds the model and its example input.

  pkg.mod:build          an importable module and a callable in it
  path/to/file.py:build  a Python file (loaded under a unique module name) and a callable in it
  torchvision:NAME       torchvision.models.get_model(NAME) (random weights, seed 0), input (2, 3, 32, 32)
  timm:NAME              timm.create_model(NAME, pretrained=False), input (2, 3, 32, 32)
  dropnorm:NAME          a model of dropnorm's catalogue (dropnorm/zoo/models/): a pitfall or a correct one

The callable takes no argument and returns (module, example_input) or (module, example_input,
options): example_input a tensor or a tuple of tensors batched along dim 0; options a dict with
"freeze": a callable(model) that freezes it as the user's fine-tuning does (MD-FREEZE-01).
Loading runs the named code: name only code you trust.
"""
from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
import uuid
from dataclasses import dataclass, field

import torch

from dropnorm.errors import UsageError

NAMED_INPUT = (2, 3, 32, 32)   # small: ResNet's last BatchNorms see 1x1 maps (batch 1 cannot train)


class TargetError(UsageError):
    """A TARGET that cannot be loaded or is not (module, input): one line says what to fix (exit 2)."""


@dataclass
class Target:
    spec: str
    model: torch.nn.Module
    example: tuple            # the example input as a tuple of tensors
    options: dict = field(default_factory=dict)
    description: str = ""


def _named(kind: str, name: str, catalogue=None):
    if kind == "torchvision":
        try:
            import torchvision
        except Exception as e:   # absent, or a build that does not match torch's (a CUDA wheel on a CPU torch)
            raise TargetError(f"torchvision:{name} needs a torchvision that loads with this torch "
                              f"({type(e).__name__}: {e}); pip install 'dropnorm[models]'") from None
        try:
            torch.manual_seed(0)   # the random initialisation: the same model in every audit and reproduction
            model = torchvision.models.get_model(name, weights=None)
        except (ValueError, KeyError) as e:
            raise TargetError(f"torchvision has no model {name!r} ({e})") from None
        return model, torch.randn(*NAMED_INPUT, generator=torch.Generator().manual_seed(0)), {}
    if kind == "timm":
        try:
            import timm
        except Exception as e:
            raise TargetError(f"timm:{name} needs a timm (and torchvision) that loads with this torch "
                              f"({type(e).__name__}: {e}); pip install 'dropnorm[models]'") from None
        try:
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False)
        except RuntimeError as e:
            raise TargetError(f"timm has no model {name!r} ({e})") from None
        return model, torch.randn(*NAMED_INPUT, generator=torch.Generator().manual_seed(0)), {}
    if kind == "dropnorm":
        # the catalogue (dropnorm/zoo/models/) is built on this package, so its caller hands it in
        entry = (catalogue or {}).get(name)
        if entry is None:
            raise TargetError(f"dropnorm's model catalogue has no {name!r}; known: {', '.join(sorted(catalogue or {}))}")
        return entry.build()
    raise AssertionError(kind)


def find_callable(spec: str, what: str = "TARGET"):
    """The callable that MODULE:CALLABLE or FILE.py:CALLABLE names (a TARGET, or --freeze's recipe)."""
    if ":" not in spec:
        raise TargetError(f"{what} {spec!r} must be MODULE:CALLABLE or FILE.py:CALLABLE"
                          + (" (or torchvision:NAME, timm:NAME, dropnorm:NAME)" if what == "TARGET" else ""))
    where, _, attr = spec.rpartition(":")
    if not attr.isidentifier():
        raise TargetError(f"{what} {spec!r}: {attr!r} is not a Python name")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = pathlib.Path(where)
        if not path.is_file():
            raise TargetError(f"{what} {spec!r}: no file {where}")
        modname = f"_dropnorm_model_{path.stem}_{uuid.uuid4().hex[:8]}"
        module_spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[modname] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            raise TargetError(f"{what} {spec!r}: importing {where} raised {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:
            raise TargetError(f"{what} {spec!r}: importing {where} raised {type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise TargetError(f"{what} {spec!r}: {where} has no callable {attr!r}")
    return fn


def _callable(spec: str):
    fn = find_callable(spec)
    try:
        return fn()
    except Exception as e:
        raise TargetError(f"TARGET {spec!r}: {spec.rpartition(':')[2]}() raised {type(e).__name__}: {e}") from None


def as_target(built, spec: str = "<object>") -> Target:
    """Validate what a build callable returned: (module, input) or (module, input, options)."""
    if not isinstance(built, (tuple, list)) or len(built) not in (2, 3):
        raise TargetError(f"TARGET {spec!r} must return (nn.Module, example_input[, options]), "
                          f"got {type(built).__name__}")
    model, example = built[0], built[1]
    options = dict(built[2]) if len(built) == 3 and built[2] else {}
    if not isinstance(model, torch.nn.Module):
        raise TargetError(f"TARGET {spec!r}: the first element is {type(model).__name__}, not an nn.Module")
    example = (example,) if isinstance(example, torch.Tensor) else tuple(example) if isinstance(
        example, (tuple, list)) else None
    if not example or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in example):
        raise TargetError(f"TARGET {spec!r}: the example input must be a tensor or a tuple of tensors, "
                          "each batched along dim 0")
    if len({t.shape[0] for t in example}) != 1:
        raise TargetError(f"TARGET {spec!r}: the example tensors disagree on the batch size (dim 0)")
    unknown = set(options) - {"freeze"}
    if unknown:
        raise TargetError(f"TARGET {spec!r}: unknown options {sorted(unknown)} (known: freeze)")
    if "freeze" in options and not callable(options["freeze"]):
        raise TargetError(f"TARGET {spec!r}: options['freeze'] must be a callable(model)")
    return Target(spec, model, example, options, type(model).__name__)


def load_target(spec: str, catalogue: dict | None = None) -> Target:
    """The model and example input that TARGET names; `catalogue` (name -> entry with build()) resolves
    dropnorm:NAME (dropnorm.zoo.models.catalogue(), which the command passes)."""
    kind, _, name = spec.partition(":")
    if kind in ("torchvision", "timm", "dropnorm") and name and "/" not in kind:
        built = _named(kind, name, catalogue)
    else:
        built = _callable(spec)
    return as_target(built, spec)
