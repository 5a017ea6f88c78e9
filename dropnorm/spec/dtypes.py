"""Floating-point formats the suite exercises, and rounding float64 values to them.

Values are exchanged with implementations as float64 numpy arrays that are
exactly representable in the dtype under test, so the float64 reference sees
the very numbers the implementation sees.
"""
from __future__ import annotations

import numpy as np

DTYPES = ("float64", "float32", "float16", "bfloat16")

# Unit roundoff u = 2^-p for a p-bit significand (round to nearest) [Higham 2.1].
UNIT_ROUNDOFF = {
    "float64": 2.0 ** -53,
    "float32": 2.0 ** -24,
    "float16": 2.0 ** -11,
    "bfloat16": 2.0 ** -8,
}

# Largest finite value, to keep generated inputs clear of overflow.
MAX_FINITE = {
    "float64": float(np.finfo(np.float64).max),
    "float32": float(np.finfo(np.float32).max),
    "float16": 65504.0,
    "bfloat16": float(np.finfo(np.float32).max),
}


def _round_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float64 to the nearest bfloat16 (ties to even), returned as float64."""
    f32 = np.asarray(x, dtype=np.float64).astype(np.float32)
    bits = f32.view(np.uint32).astype(np.uint64)
    finite = np.isfinite(f32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32).astype(np.float64)
    return np.where(finite, out, f32.astype(np.float64))  # inf and NaN pass through


def round_to(x, dtype: str) -> np.ndarray:
    """float64 array of the values of `x` rounded to `dtype`."""
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return x.copy()
    if dtype == "float32":
        return x.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return _round_bfloat16(x)
    raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")


def is_representable(x, dtype: str) -> bool:
    x = np.asarray(x, dtype=np.float64)
    r = round_to(x, dtype)
    return bool(np.all((r == x) | (np.isnan(r) & np.isnan(x))))
