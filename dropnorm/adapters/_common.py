"""Pieces shared by the adapters of other frameworks (keras, flax, onnxruntime, tensorflow)."""
from __future__ import annotations

import importlib

import numpy as np

from dropnorm import repro
from dropnorm.adapters.base import NotProvided

FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")


class FrameworkUnavailable(NotProvided):
    """The framework an --impl names is not installed (or cannot be loaded in this process)."""


def require(module: str, extra: str, impl: str):
    """Import `module` or raise FrameworkUnavailable saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise FrameworkUnavailable(
            f"--impl {impl} needs {module.split('.')[0]}, which is not installed here ({e}); "
            f"install it with: pip install 'dropnorm[{extra}]' (see docs/conventions.md)") from None


def record_forward(x, dtype, layout):
    repro.record(f"out = layer.forward({repro.array_literal(x)}, dtype={dtype!r}, layout={layout!r})")


def record_forward_backward(x, dy, dtype, layout):
    repro.record(f"out = layer.forward_backward({repro.array_literal(x)}, {repro.array_literal(dy)}, "
                 f"dtype={dtype!r}, layout={layout!r})")


def record_load(values: dict):
    repro.record("layer.load(" + ", ".join(f"{k}={repro.value_literal(v)}" for k, v in values.items()) + ")")


def record_construct(call: str):
    repro.record(f"layer = impl.{call}")


def bn_call(dims, **kw) -> str:
    return "batchnorm(" + ", ".join([repr(dims)] + [f"{k}={v!r}" for k, v in kw.items()]) + ")"


def f64(a) -> np.ndarray | None:
    return None if a is None else np.array(a, dtype=np.float64)


EMPTY_STATE = {"weight": None, "bias": None, "running_mean": None, "running_var": None,
               "num_batches_tracked": None, "param_dtype": None}
