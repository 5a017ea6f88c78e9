"""Pieces shared by the adapters of frameworks other than torch: importing a framework with the extra that
installs it, float64 results, the stateless dropout's state, and the limits many frameworks share."""
from __future__ import annotations

import importlib

import numpy as np

from dropnorm.adapters.base import Limit, NotProvided

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



def f64(a) -> np.ndarray | None:
    """A framework's array (or None) as float64 numpy values."""
    return None if a is None else np.array(a, dtype=np.float64)


class StatelessDropout:
    """state/load/roundtrip of a dropout layer that keeps no parameters or buffers (mixed into the
    frameworks' dropout layers)."""

    def state(self):
        return dict(EMPTY_STATE)

    def load(self, **values):
        raise NotProvided(f"{self.kind} has no parameters or buffers")

    def roundtrip(self):
        raise NotProvided(f"{self.kind} has no state to round-trip")


EMPTY_STATE = {"weight": None, "bias": None, "running_mean": None, "running_var": None,
               "num_batches_tracked": None, "param_dtype": None}


def batchnorm_keywords(impl, dims, num_features, eps, momentum, affine, track_running_stats) -> dict:
    """Check and record a batchnorm construction: dims, then impl's declared capabilities (impl.refuse:
    NotProvided with the reason of the first Limit that applies); returns the torch-style keywords."""
    kw = dict(num_features=num_features, eps=eps, momentum=momentum, affine=affine,
              track_running_stats=track_running_stats)
    if dims not in (1, 2, 3):
        raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
    impl.refuse(f"BatchNorm{dims}d", **kw)
    return kw


def fixed_statistics(framework: str) -> tuple[Limit, Limit]:
    """The limits of a framework with a fixed momentum and always-on running statistics (Keras, Flax, ...):
    no cumulative average (momentum=None), no option without running statistics."""
    return (Limit.on("momentum", lambda m: m is None, f"{framework} has no cumulative average (momentum=None)"),
            Limit.on("track_running_stats", lambda t: t is False,
                     f"{framework} has no option without running statistics"))


def no_inplace(reason: str) -> Limit:
    """The limit of a framework without in-place layers (immutable arrays, a graph): inplace=True."""
    return Limit.on("inplace", bool, reason)
