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
Not provided: inplace, momentum=None, track_running_stats=False, gradcheck,
flax.nnx (not wired in this adapter).
"""
from __future__ import annotations

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import FlagModeLayer, Implementation, NotProvided, Output
from dropnorm.adapters.layouts import numpy_view
from dropnorm.spec.dtypes import round_to

jax = c.require("jax", "flax", "flax")
jax.config.update("jax_enable_x64", True)
flax = c.require("flax", "flax", "flax")
import flax.linen as nn  # noqa: E402
import flax.serialization  # noqa: E402
import jax.numpy as jnp  # noqa: E402

JNP = {"float64": jnp.float64, "float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}


def _tensor(x, dtype, layout):
    return jnp.asarray(numpy_view(round_to(x, dtype), layout), dtype=JNP[dtype])


def _np(a):
    return None if a is None else np.asarray(jnp.asarray(a, jnp.float64))


def _dtype_name(a):
    return {jnp.dtype(v): k for k, v in JNP.items()}.get(a.dtype, str(a.dtype))


class _FlaxLayer(FlagModeLayer):
    """A flax.linen layer; train/eval is the `deterministic` / `use_running_average` flag of each call."""


class FlaxDropout(c.StatelessDropout, _FlaxLayer):
    def __init__(self, impl, kind, p, inplace):
        super().__init__(impl, kind, dict(p=p, inplace=inplace))
        if inplace:
            raise NotProvided("JAX arrays are immutable: no in-place dropout")
        self.p = p

    def _module(self, ndim):
        dims = tuple(range(2, ndim)) if self.kind == "Dropout2d" else ()
        return nn.Dropout(rate=self.p, broadcast_dims=dims)

    def _apply(self, t):
        module = self._module(t.ndim)
        if not self._training:
            return lambda xx: module.apply({}, xx, deterministic=True)
        key = self.impl.next_key()
        return lambda xx: module.apply({}, xx, deterministic=False, rngs={"dropout": key})

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        t = _tensor(x, dtype, layout)
        y = self._apply(t)(t)
        return Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        t = _tensor(x, dtype, layout)
        y, vjp = jax.vjp(self._apply(t), t)
        (dx,) = vjp(_tensor(dy, dtype, "contiguous"))
        return Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False, dx=_np(dx))



NAMES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
         "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


class FlaxBatchNorm(_FlaxLayer):
    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, f"BatchNorm{dims}d", kwargs)
        self.dims, self.config, self.num_features = dims, dict(config), kwargs["num_features"]
        self.param_dtype = "float32"
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
        t = _tensor(x, dtype, layout)
        params = self.variables.get("params", {})
        f = self._fn(dtype)
        if dy is None:
            y, updates = f(t, params)
            grads = None
        else:
            y, vjp, updates = jax.vjp(f, t, params, has_aux=True)
            grads = vjp(_tensor(dy, dtype, "contiguous").astype(y.dtype))
        self.variables = {**self.variables, "batch_stats": dict(updates["batch_stats"])}
        out = Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False)
        if grads is not None:
            out.dx = _np(grads[0])
            out.dweight = _np(grads[1].get("scale")) if grads[1] else None
            out.dbias = _np(grads[1].get("bias")) if grads[1] else None
        return out

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        return self._run(x, dtype, layout)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        return self._run(x, dtype, layout, dy=dy)

    def state(self):
        out = {k: _np(self.variables.get(col, {}).get(name)) for k, (col, name) in NAMES.items()}
        out.update(num_batches_tracked=None, param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        for key, value in values.items():
            col, name = NAMES.get(key, (None, None))
            if col is None or name not in self.variables.get(col, {}):
                raise NotProvided(f"flax BatchNorm has no {key} (convention flax: no counter; "
                                  f"affine=False has no scale/bias)")
            self.variables[col] = {**self.variables[col],
                                   name: jnp.asarray(round_to(np.asarray(value, np.float64), self.param_dtype),
                                                     dtype=JNP[self.param_dtype])}

    def to(self, dtype):
        self.param_dtype = dtype
        self.variables = jax.tree_util.tree_map(lambda a: a.astype(JNP[dtype]), self.variables)

    def roundtrip(self):
        blob = flax.serialization.to_bytes(self.variables)
        fresh = FlaxBatchNorm(self.impl, self.dims, self.kwargs, self.config)
        fresh.to(self.param_dtype)
        fresh.variables = flax.serialization.from_bytes(fresh.variables, blob)
        fresh._training = self._training
        return fresh


class FlaxImplementation(Implementation):
    name = "flax"
    convention = "flax"

    def __init__(self):
        self.version = f"flax {flax.__version__}, jax {jax.__version__}"
        self.target = "flax.linen Dropout / BatchNorm"
        self._key = jax.random.key(0)

    def provides(self, kind):
        return kind in ("Dropout", "Dropout2d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")

    def expresses(self, kind, **o):
        return not (o.get("inplace") or ("momentum" in o and o["momentum"] is None)
                    or o.get("track_running_stats") is False)

    def next_key(self):
        self._key, sub = jax.random.split(self._key)
        return sub

    def seed(self, seed):
        self._key = jax.random.key(int(seed))

    def rng_state(self):
        return np.asarray(jax.random.key_data(self._key)).tobytes()

    def dropout(self, p=0.5, inplace=False):
        return FlaxDropout(self, "Dropout", p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        return FlaxDropout(self, "Dropout2d", p, inplace)

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_kwargs('flax BatchNorm', dims, num_features, eps, momentum, affine, track_running_stats)
        from dropnorm.spec import conventions
        config = dict(epsilon=eps, momentum=conventions.get("flax").framework_momentum(momentum),
                      use_scale=affine, use_bias=affine)
        return FlaxBatchNorm(self, dims, kw, config)

    def batchnorm_defaults(self, dims, num_features):
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return FlaxBatchNorm(self, dims, kw, {})


def load(name: str = "flax", device: str = "cpu") -> FlaxImplementation:
    """--impl flax (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return FlaxImplementation()
