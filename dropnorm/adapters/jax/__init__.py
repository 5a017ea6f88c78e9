"""The JAX family's adapters (flax.linen, flax.nnx, Equinox, Haiku), on one base (base.py: arrays, dtypes,
keys). Importing this package imports no JAX; each adapter calls require_jax first, so that a missing JAX
is reported with that adapter's extra."""
from __future__ import annotations

from dropnorm.adapters import _common as c


def require_jax(extra: str, impl: str):
    """Import jax (or raise FrameworkUnavailable naming `extra`), with float64 arrays kept float64
    (jax_enable_x64): the tests exchange float64 values and audit float64 as a dtype of its own."""
    jax = c.require("jax", extra, impl)
    jax.config.update("jax_enable_x64", True)
    return jax
