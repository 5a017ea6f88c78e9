"""Adapter for flax.linen Dropout and BatchNorm on JAX (--impl flax).

Convention "flax" (spec/conventions.toml): momentum weighs the old value (the
adapter passes 1 - torch's momentum), the running variance is fed the biased
batch variance, default eps 1e-5; RNG by explicit keys. JAX runs with
jax_enable_x64 so that float64 arrays stay float64.

Mapping of the torch-style interface:
  Dropout(p)           nn.Dropout(rate=p) applied with deterministic=not training
  Dropout2d(p)         nn.Dropout(rate=p, broadcast_dims=(2, ..., ndim-1)): one draw per (N, C)
  BatchNormNd(C, eps, momentum, affine)
                       nn.BatchNorm(axis=1, epsilon=eps, momentum=1 - momentum,
                       use_scale=affine, use_bias=affine, dtype=<input dtype>,
                       param_dtype=<parameter dtype>), initialised for (2, C, 1, ...);
                       use_running_average=not training; batch_stats updated with
                       mutable=["batch_stats"] in training
  seed(s), RNG         the adapter holds a key, jax.random.key(s); each training call
                       splits it and passes the subkey as rngs={"dropout": subkey}, the
                       way a Flax training loop does; eval draws nothing
  state                params (scale, bias) and batch_stats (mean, var); no counter
  roundtrip            flax.serialization.to_bytes / from_bytes of the variables
  gradients            jax.vjp
Not provided: inplace, momentum=None, track_running_stats=False, gradcheck
(flax.nnx is --impl flax-nnx, flax_nnx.py).
"""
from __future__ import annotations


from dropnorm.adapters import _common as c
from dropnorm.adapters.base import NotProvided
from dropnorm.adapters.jax import require_jax

jax = require_jax("flax", "flax")
flax = c.require("flax", "flax", "flax")
import flax.linen as nn  # noqa: E402
import flax.serialization  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from dropnorm.adapters.jax import base  # noqa: E402
from dropnorm.adapters.jax.base import JNP, output, tensor, to_numpy  # noqa: E402


class FlaxDropout(base.JaxDropout):
    """nn.Dropout applied with deterministic = not training; train/eval is the flag of each call."""

    def _f(self, ndim):
        dims = tuple(range(2, ndim)) if self.kind == "Dropout2d" else ()
        module = nn.Dropout(rate=self.p, broadcast_dims=dims)
        if not self._training:
            return lambda xx: module.apply({}, xx, deterministic=True)
        key = self.impl.next_key()
        return lambda xx: module.apply({}, xx, deterministic=False, rngs={"dropout": key})


NAMES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
         "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


class FlaxBatchNorm(base.JaxBatchNorm):
    """nn.BatchNorm with its variables kept by the adapter; use_running_average = not training."""

    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, dims, kwargs, config)
        shape = (2, self.num_features) + (1,) * {1: 0, 2: 2, 3: 3}[dims]
        self.variables = self._module("float32").init(jax.random.key(0), jnp.zeros(shape, jnp.float32),
                                                       use_running_average=False)
        self.variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a), dict(self.variables))

    def _module(self, dtype):
        return nn.BatchNorm(axis=1, dtype=JNP[dtype], param_dtype=JNP[self.param_dtype], **self.config)

    def _fn(self, dtype):
        module = self._module(dtype)
        bs = self.variables.get("batch_stats", {})

        def f(xx, params):
            variables = {"params": params, "batch_stats": bs} if params else {"batch_stats": bs}
            if self._training:
                return module.apply(variables, xx, use_running_average=False, mutable=["batch_stats"])
            return module.apply(variables, xx, use_running_average=True), {"batch_stats": bs}
        return f

    def _run(self, x, dtype, layout, dy=None):
        t = tensor(x, dtype, layout)
        params = self.variables.get("params", {})
        f = self._fn(dtype)
        if dy is None:
            y, updates = f(t, params)
            grads = None
        else:
            y, vjp, updates = jax.vjp(f, t, params, has_aux=True)
            grads = vjp(tensor(dy, dtype).astype(y.dtype))
        self.variables = {**self.variables, "batch_stats": dict(updates["batch_stats"])}
        if grads is None:
            return output(y, t)
        return output(y, t, dx=grads[0], dweight=grads[1].get("scale") if grads[1] else None,
                      dbias=grads[1].get("bias") if grads[1] else None)

    def state(self):
        out = {k: to_numpy(self.variables.get(col, {}).get(name)) for k, (col, name) in NAMES.items()}
        out.update(num_batches_tracked=None, param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        for key, value in values.items():
            col, name = NAMES.get(key, (None, None))
            if col is None or name not in self.variables.get(col, {}):
                raise NotProvided(f"flax BatchNorm has no {key} (convention flax: no counter; "
                                  f"affine=False has no scale/bias)")
            self.variables[col] = {**self.variables[col], name: self._param(value)}

    def to(self, dtype):
        self.param_dtype = dtype
        self.variables = jax.tree_util.tree_map(lambda a: a.astype(JNP[dtype]), self.variables)

    def roundtrip(self):
        blob = flax.serialization.to_bytes(self.variables)
        fresh = self._fresh()
        fresh.variables = flax.serialization.from_bytes(fresh.variables, blob)
        return fresh


class FlaxImplementation(base.JaxImplementation):
    name = "flax"
    convention = "flax"
    dropout_layer, batchnorm_layer = FlaxDropout, FlaxBatchNorm
    limits = (base.IMMUTABLE, *c.fixed_statistics("flax BatchNorm"))

    def __init__(self):
        super().__init__()
        self.version = f"flax {flax.__version__}, jax {jax.__version__}"
        self.target = "flax.linen Dropout / BatchNorm"

    def batchnorm_config(self, eps, momentum, affine):
        return dict(epsilon=eps, momentum=self.framework_momentum(momentum), use_scale=affine, use_bias=affine)


def load(name: str = "flax", device: str = "cpu") -> FlaxImplementation:
    """--impl flax (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return FlaxImplementation()
