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
from dropnorm.adapters.base import NotProvided
from dropnorm.adapters.jax import require_jax

jax = require_jax("flax", "flax-nnx")
flax = c.require("flax", "flax", "flax-nnx")
from flax import nnx  # noqa: E402
import flax.serialization  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from dropnorm.adapters.jax import base  # noqa: E402
from dropnorm.adapters.jax.base import JNP, output, tensor, to_numpy  # noqa: E402


class NnxDropout(base.JaxDropout):
    """nnx.Dropout, one module (one RngStream) per layer, called with deterministic = not training."""

    def __init__(self, impl, kind, p, inplace):
        super().__init__(impl, kind, p, inplace)
        # Dropout2d's broadcast_dims, which depend on the rank, are set before each call
        self.module = nnx.Dropout(rate=p, broadcast_dims=(), rngs=nnx.Rngs(dropout=impl.seed_value))
        impl.register(self)

    def _module(self, ndim):
        self.module.broadcast_dims = tuple(range(2, ndim)) if self.kind == "Dropout2d" else ()
        return self.module

    def _f(self, ndim):
        m = self._module(ndim)
        return lambda xx: m(xx, deterministic=not self._training)

    def _grad_f(self, ndim):
        if not self._training or self.p == 0:
            return self._f(ndim)
        m = self._module(ndim)
        key = m.rngs()   # the mask is drawn once, outside the vjp (a stream's counter is state)
        return lambda xx: m(xx, deterministic=False, rngs=key)


NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


class NnxBatchNorm(base.JaxBatchNorm):
    """nnx.BatchNorm; its dtype is set to the input's before each call, use_running_average = not training."""

    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, dims, kwargs, config)
        self.module = nnx.BatchNorm(self.num_features, axis=1, param_dtype=jnp.float32, rngs=nnx.Rngs(0),
                                    **self.config)

    def _run(self, x, dtype, layout, dy=None):
        m = self.module
        m.dtype = JNP[dtype]
        t = tensor(x, dtype, layout)
        ura = not self._training
        if dy is None:
            return output(m(t, use_running_average=ura), t)
        graphdef, params, rest = nnx.split(m, nnx.Param, ...)

        def f(xx, pp, rr):
            mm = nnx.merge(graphdef, pp, rr)
            return mm(xx, use_running_average=ura), nnx.state(mm, nnx.BatchStat)

        y, vjp, stats = jax.vjp(f, t, params, rest, has_aux=True)
        gx, gp, _ = vjp(tensor(dy, dtype).astype(y.dtype))
        nnx.update(m, stats)
        g = nnx.to_pure_dict(gp)
        return output(y, t, dx=gx, dweight=g.get("scale"), dbias=g.get("bias"))

    def state(self):
        m = self.module
        out = {k: (to_numpy(getattr(m, name).value) if getattr(m, name, None) is not None else None)
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
            getattr(m, name).value = self._param(value)

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
        fresh = self._fresh()
        state = nnx.state(fresh.module)
        restored = jax.tree_util.tree_map(jnp.asarray, flax.serialization.msgpack_restore(blob))  # numpy -> jax
        nnx.replace_by_pure_dict(state, restored)
        nnx.update(fresh.module, state)
        return fresh


class NnxImplementation(base.JaxImplementation):
    """flax.nnx: no adapter-held key; each Dropout holds its own RngStream, which seed() replaces."""

    name = "flax-nnx"
    convention = "flax"
    cost_factor = 20.0   # measured: a quick audit ~20x torch's on this machine (per-call jax dispatch)
    dropout_layer, batchnorm_layer = NnxDropout, NnxBatchNorm
    limits = (base.IMMUTABLE, *c.fixed_statistics("flax nnx.BatchNorm"))

    def __init__(self):
        self.version = f"flax {flax.__version__} (nnx), jax {jax.__version__}"
        self.target = "flax.nnx Dropout / BatchNorm"
        self.seed_value = 0
        self._live = weakref.WeakSet()

    def register(self, layer):
        self._live.add(layer)

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

    def next_key(self):
        raise NotImplementedError("flax.nnx draws from each layer's own RngStream")

    def batchnorm_config(self, eps, momentum, affine):
        return dict(epsilon=eps, momentum=self.framework_momentum(momentum), use_scale=affine, use_bias=affine)


def load(name: str = "flax-nnx", device: str = "cpu") -> NnxImplementation:
    """--impl flax-nnx (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return NnxImplementation()
