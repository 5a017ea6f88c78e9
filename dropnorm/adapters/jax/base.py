"""What the JAX family's adapters (flax.linen, flax.nnx, Equinox, Haiku) share: arrays in and out, dtype
names, the PRNG key the adapter holds, the dropout layer run through one function per call, the BatchNorm
layer's parameter arrays, and the Implementation's factories.

Imported after dropnorm.adapters.jax.require_jax (which reports a missing JAX with the adapter's extra).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import FlagModeLayer, Implementation, Output, RunLayer
from dropnorm.adapters.layouts import numpy_view
from dropnorm.spec.dtypes import round_to

JNP = {"float64": jnp.float64, "float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}
NAMES = {jnp.dtype(v): k for k, v in JNP.items()}

# every JAX adapter's layers are functions of immutable arrays
IMMUTABLE = c.no_inplace("JAX arrays are immutable: no in-place dropout")


def tensor(x, dtype: str, layout: str = "contiguous"):
    """A JAX array of `dtype` holding x's values (rounded to the dtype first), built from a numpy view with
    `layout`'s strides (JAX copies it: a JAX array has no strides of its own)."""
    return jnp.asarray(numpy_view(round_to(x, dtype), layout), dtype=JNP[dtype])


def to_numpy(a) -> np.ndarray | None:
    """A JAX array (or None) as a writable float64 numpy copy."""
    return None if a is None else np.array(jnp.asarray(a, jnp.float64))


def dtype_name(a) -> str:
    return NAMES.get(a.dtype, str(a.dtype))


def output(y, t, **grads) -> Output:
    """The Output of a call on input t that returned y (JAX never aliases its input); grads: dx, dweight,
    dbias as JAX arrays or None."""
    return Output(y=to_numpy(y), dtype=dtype_name(y), x_after=to_numpy(t), shares_input_memory=False,
                  **{k: to_numpy(v) for k, v in grads.items()})


class JaxDropout(c.StatelessDropout, FlagModeLayer):
    """A dropout layer of the JAX family: each call is one function x -> y (`_f`, built per call, with a
    fresh key in training), differentiated with jax.vjp."""

    def __init__(self, impl, kind: str, p: float, inplace: bool):
        super().__init__(impl, kind, dict(p=p, inplace=inplace))
        self.p = p

    def _f(self, ndim: int):
        """The function x -> y of this call on an input of rank ndim."""
        raise NotImplementedError

    def _grad_f(self, ndim: int):
        """The function differentiated by forward_backward (a framework whose key is state draws it here,
        outside the vjp); by default _f."""
        return self._f(ndim)

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        t = tensor(x, dtype, layout)
        return output(self._f(t.ndim)(t), t)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        t = tensor(x, dtype, layout)
        y, vjp = jax.vjp(self._grad_f(t.ndim), t)
        (dx,) = vjp(tensor(dy, dtype).astype(y.dtype))
        return output(y, t, dx=dx)


class JaxBatchNorm(RunLayer, FlagModeLayer):
    """A BatchNorm layer of the JAX family: the framework's configuration (`config`, built by the
    Implementation from torch's keywords), parameters held in `param_dtype`, and one `_run` per call
    (dy None: forward only)."""

    def __init__(self, impl, dims: int, kwargs: dict, config: dict):
        super().__init__(impl, f"BatchNorm{dims}d", kwargs)
        self.dims, self.config, self.num_features = dims, dict(config), kwargs["num_features"]
        self.param_dtype = "float32"

    def _param(self, value):
        """A loaded value as an array of the parameter dtype (rounded to it first)."""
        return jnp.asarray(round_to(np.asarray(value, np.float64), self.param_dtype), dtype=JNP[self.param_dtype])

    def _fresh(self) -> "JaxBatchNorm":
        """A new layer with this one's constructor arguments, parameter dtype and mode (roundtrip's target)."""
        fresh = type(self)(self.impl, self.dims, self.kwargs, self.config)
        fresh.to(self.param_dtype)
        fresh._training = self._training
        return fresh


class JaxImplementation(Implementation):
    """An implementation of the JAX family: masks drawn from a key the adapter holds (jax.random.key(seed)),
    split per training call as a JAX training loop does; Dropout, Dropout2d and BatchNorm{1,2,3}d built
    from the layer classes below, with what the framework cannot express declared in `missing` and
    `limits` (base.Implementation.refuse)."""

    dropout_layer: type = JaxDropout
    batchnorm_layer: type = JaxBatchNorm
    limits = (IMMUTABLE,)

    def __init__(self):
        self._key = jax.random.key(0)

    def next_key(self):
        self._key, sub = jax.random.split(self._key)
        return sub

    def seed(self, seed):
        self._key = jax.random.key(int(seed))

    def rng_state(self):
        return np.asarray(jax.random.key_data(self._key)).tobytes()

    def _dropout(self, kind: str, p: float, inplace: bool):
        self.refuse(kind, p=p, inplace=inplace)
        return self.dropout_layer(self, kind, p, inplace)

    def dropout(self, p=0.5, inplace=False):
        return self._dropout("Dropout", p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        return self._dropout("Dropout2d", p, inplace)

    def batchnorm_config(self, eps: float, momentum: float, affine: bool) -> dict:
        """The framework's BatchNorm arguments for torch's eps, momentum (a torch momentum, converted by the
        implementation's convention) and affine."""
        raise NotImplementedError

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_keywords(self, dims, num_features, eps, momentum, affine, track_running_stats)
        return self.batchnorm_layer(self, dims, kw, self.batchnorm_config(eps, momentum, affine))

    def batchnorm_defaults(self, dims, num_features):
        """The framework's BatchNorm with none of the arguments given: its own default momentum and eps."""
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return self.batchnorm_layer(self, dims, kw, {})

    def framework_momentum(self, momentum: float) -> float:
        """torch's momentum in the framework's terms (spec/conventions.toml: the implementation's convention)."""
        from dropnorm.spec import conventions
        return conventions.get(self.convention).framework_momentum(momentum)
