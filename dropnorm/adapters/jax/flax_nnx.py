"""Adapter for flax.nnx Dropout and BatchNorm on JAX (--impl flax-nnx).

Convention "flax" (spec/conventions.toml, shared with flax.linen): momentum weighs the old
value (the adapter passes 1 - torch's momentum), the running variance is fed the biased batch
variance, default eps 1e-5; nnx.Dropout forks an RngStream at construction. JAX runs with
jax_enable_x64 so that float64 arrays stay float64.

Mapping of the torch-style interface:
  Dropout(p)           nnx.Dropout(rate=p, rngs=nnx.Rngs(dropout=seed)) called with
                       deterministic=not training
  Dropout2d(p)         nnx.Dropout(rate=p, rngs=...) with broadcast_dims = (2, ..., ndim-1) set
                       before each call
  BatchNormNd(C, eps, momentum, affine)
                       nnx.BatchNorm(C, axis=1, epsilon=eps, momentum=1 - momentum,
                       use_scale=affine, use_bias=affine, param_dtype=<parameter dtype>,
                       rngs=nnx.Rngs(0)); the module's dtype is set to the input dtype before
                       each call; called with use_running_average=not training
  seed(s), RNG         each live Dropout's stream is replaced by nnx.Rngs(dropout=s)'s fork
                       (as a layer built with rngs=nnx.Rngs(dropout=s)), and layers built later
                       get the same; rng_state is the live streams' counters
  state                nnx.Param scale, bias; nnx.BatchStat mean, var; no counter
  roundtrip            nnx.to_pure_dict(nnx.state(m)) -> flax.serialization.msgpack ->
                       nnx.replace_by_pure_dict -> nnx.update on a fresh module
  gradients            jax.vjp of nnx.merge(graphdef, params, rest)(x), the new batch
                       statistics returned as aux and written back with nnx.update
Not provided: inplace, momentum=None, track_running_stats=False, gradcheck.
"""
from __future__ import annotations

import weakref

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import FlagModeLayer, Implementation, NotProvided, Output
from dropnorm.adapters.layouts import numpy_view
from dropnorm.spec.dtypes import round_to

jax = c.require("jax", "flax", "flax-nnx")
jax.config.update("jax_enable_x64", True)
flax = c.require("flax", "flax", "flax-nnx")
from flax import nnx  # noqa: E402
import flax.serialization  # noqa: E402
import jax.numpy as jnp  # noqa: E402

JNP = {"float64": jnp.float64, "float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}


def _tensor(x, dtype, layout):
    return jnp.asarray(numpy_view(round_to(x, dtype), layout), dtype=JNP[dtype])


def _np(a):
    return None if a is None else np.array(jnp.asarray(a, jnp.float64))   # a writable copy


def _dtype_name(a):
    return {jnp.dtype(v): k for k, v in JNP.items()}.get(a.dtype, str(a.dtype))


def _value(v):
    return v[...] if hasattr(v, "__getitem__") and not isinstance(v, jax.Array) else v.value


class NnxDropout(c.StatelessDropout, FlagModeLayer):
    def __init__(self, impl, kind, p, inplace):
        super().__init__(impl, kind, dict(p=p, inplace=inplace))
        if inplace:
            raise NotProvided("JAX arrays are immutable: no in-place dropout")
        self.p = p
        # one module (one stream) per layer; Dropout2d's broadcast_dims, which depend on the rank,
        # are set before each call
        self.module = nnx.Dropout(rate=p, broadcast_dims=(), rngs=nnx.Rngs(dropout=impl.seed_value))
        impl.register(self)

    def _module(self, ndim):
        self.module.broadcast_dims = tuple(range(2, ndim)) if self.kind == "Dropout2d" else ()
        return self.module

    def _call(self, t):
        m = self._module(t.ndim)
        return lambda xx: m(xx, deterministic=not self._training)

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        t = _tensor(x, dtype, layout)
        y = self._call(t)(t)
        return Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        t = _tensor(x, dtype, layout)
        if not self._training or self.p == 0:
            f = self._call(t)
            y, vjp = jax.vjp(f, t)
        else:   # the mask is drawn once, outside the vjp (a stream's counter is state)
            m = self._module(t.ndim)
            key = m.rngs()
            y, vjp = jax.vjp(lambda xx: m(xx, deterministic=False, rngs=key), t)
        (dx,) = vjp(_tensor(dy, dtype, "contiguous"))
        return Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False, dx=_np(dx))



NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


class NnxBatchNorm(FlagModeLayer):
    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, f"BatchNorm{dims}d", kwargs)
        self.dims, self.config, self.num_features = dims, dict(config), kwargs["num_features"]
        self.param_dtype = "float32"
        self.module = nnx.BatchNorm(self.num_features, axis=1, param_dtype=jnp.float32, rngs=nnx.Rngs(0),
                                    **self.config)

    def _run(self, x, dtype, layout, dy=None):
        m = self.module
        m.dtype = JNP[dtype]
        t = _tensor(x, dtype, layout)
        ura = not self._training
        if dy is None:
            y = m(t, use_running_average=ura)
            return Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False)
        graphdef, params, rest = nnx.split(m, nnx.Param, ...)

        def f(xx, pp, rr):
            mm = nnx.merge(graphdef, pp, rr)
            return mm(xx, use_running_average=ura), nnx.state(mm, nnx.BatchStat)

        y, vjp, stats = jax.vjp(f, t, params, rest, has_aux=True)
        gx, gp, _ = vjp(_tensor(dy, dtype, "contiguous").astype(y.dtype))
        nnx.update(m, stats)
        g = nnx.to_pure_dict(gp)
        return Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False, dx=_np(gx),
                      dweight=_np(g.get("scale")), dbias=_np(g.get("bias")))

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        return self._run(x, dtype, layout)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        return self._run(x, dtype, layout, dy)

    def state(self):
        m = self.module
        out = {k: (_np(getattr(m, name).value) if getattr(m, name, None) is not None else None)
               for k, name in NAMES.items()}
        out.update(num_batches_tracked=None, param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        m = self.module
        for key, value in values.items():
            name = NAMES.get(key)
            if name is None or getattr(m, name, None) is None:
                raise NotProvided(f"nnx.BatchNorm has no {key} (convention flax: no counter; "
                                  f"affine=False has no scale/bias)")
            getattr(m, name).value = jnp.asarray(round_to(np.asarray(value, np.float64), self.param_dtype),
                                                 dtype=JNP[self.param_dtype])

    def to(self, dtype):
        self.param_dtype = dtype
        m = self.module
        m.param_dtype = JNP[dtype]
        for name in NAMES.values():
            v = getattr(m, name, None)
            if v is not None:
                v.value = v.value.astype(JNP[dtype])

    def roundtrip(self):
        blob = flax.serialization.msgpack_serialize(nnx.to_pure_dict(nnx.state(self.module)))
        fresh = NnxBatchNorm(self.impl, self.dims, self.kwargs, self.config)
        fresh.to(self.param_dtype)
        state = nnx.state(fresh.module)
        restored = jax.tree_util.tree_map(jnp.asarray, flax.serialization.msgpack_restore(blob))  # numpy -> jax
        nnx.replace_by_pure_dict(state, restored)
        nnx.update(fresh.module, state)
        fresh._training = self._training
        return fresh


class NnxImplementation(Implementation):
    name = "flax-nnx"
    convention = "flax"
    cost_factor = 20.0   # measured: a quick audit ~20x torch's on this machine (per-call jax dispatch)

    def __init__(self):
        self.version = f"flax {flax.__version__} (nnx), jax {jax.__version__}"
        self.target = "flax.nnx Dropout / BatchNorm"
        self.seed_value = 0
        self._live = weakref.WeakSet()

    def register(self, layer):
        self._live.add(layer)

    def provides(self, kind):
        return kind in ("Dropout", "Dropout2d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")

    def expresses(self, kind, **o):
        return not (o.get("inplace") or ("momentum" in o and o["momentum"] is None)
                    or o.get("track_running_stats") is False)

    def seed(self, seed):
        self.seed_value = int(seed) % 2 ** 63
        for layer in list(self._live):
            layer.module.rngs = nnx.Rngs(dropout=self.seed_value)["dropout"].fork()

    def rng_state(self):
        """The counters of the live layers' streams (nnx has no global generator)."""
        parts = []
        for layer in sorted(self._live, key=id):
            m = layer.module
            parts.append(np.asarray(jax.random.key_data(m.rngs.key.value)).tobytes())
            parts.append(np.asarray(m.rngs.count.value).tobytes())
        return b"".join(parts)

    def dropout(self, p=0.5, inplace=False):
        return NnxDropout(self, "Dropout", p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        return NnxDropout(self, "Dropout2d", p, inplace)

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_kwargs("flax nnx.BatchNorm", dims, num_features, eps, momentum, affine,
                                track_running_stats)
        from dropnorm.spec import conventions
        config = dict(epsilon=eps, momentum=conventions.get("flax").framework_momentum(momentum),
                      use_scale=affine, use_bias=affine)
        return NnxBatchNorm(self, dims, kw, config)

    def batchnorm_defaults(self, dims, num_features):
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return NnxBatchNorm(self, dims, kw, {})


def load(name: str = "flax-nnx", device: str = "cpu") -> NnxImplementation:
    """--impl flax-nnx (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return NnxImplementation()
