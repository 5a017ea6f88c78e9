"""Adapter for Equinox's eqx.nn.Dropout and eqx.nn.BatchNorm on JAX (--impl equinox).

Convention "equinox" (spec/conventions.toml): momentum weighs the old value (default 0.99),
BatchNorm mode="batch" (the mode Equinox recommends for new code: batch statistics in
training, running statistics in inference), the running variance is fed the biased batch
variance, eps 1e-5, a training-call counter (batch_counter), explicit PRNG keys. JAX runs with
jax_enable_x64 so that float64 arrays stay float64.

Mapping of the torch-style interface:
  Dropout(p)           eqx.nn.Dropout(p) called with key=<the adapter's key, split per call>
                       and inference=not training
  Dropout2d            not provided: Equinox has no channel dropout
  BatchNormNd(C, eps, momentum, affine)
                       eqx.nn.make_with_state(eqx.nn.BatchNorm)(C, axis_name="batch", eps=eps,
                       channelwise_affine=affine, momentum=1 - momentum, mode="batch",
                       dtype=<parameter dtype>), called per sample under
                       jax.vmap(..., axis_name="batch") with inference=not training; the State
                       is kept by the adapter (channel axis 0 of each sample = axis 1)
  state                weight, bias; running statistics = the State's batch_state_index
                       (hidden mean, hidden var); num_batches_tracked = batch_counter
  roundtrip            eqx.tree_serialise_leaves / tree_deserialise_leaves of (model, state)
  gradients            jax.vjp with respect to x and (weight, bias) through eqx.tree_at
Not provided: inplace, momentum=None, momentum 0 or 1 (documented as exclusive), track_running_stats=False,
Dropout2d, gradcheck.
"""
from __future__ import annotations

import io
import warnings

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import FlagModeLayer, Implementation, NotProvided, Output
from dropnorm.adapters.layouts import numpy_view
from dropnorm.spec.dtypes import round_to

jax = c.require("jax", "equinox", "equinox")
jax.config.update("jax_enable_x64", True)
eqx = c.require("equinox", "equinox", "equinox")
import jax.numpy as jnp  # noqa: E402

JNP = {"float64": jnp.float64, "float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}


def _tensor(x, dtype, layout):
    return jnp.asarray(numpy_view(round_to(x, dtype), layout), dtype=JNP[dtype])


def _np(a):
    return None if a is None else np.array(jnp.asarray(a, jnp.float64))


def _dtype_name(a):
    return {jnp.dtype(v): k for k, v in JNP.items()}.get(a.dtype, str(a.dtype))


class EqxDropout(c.StatelessDropout, FlagModeLayer):
    def __init__(self, impl, p, inplace):
        super().__init__(impl, "Dropout", dict(p=p, inplace=inplace))
        if inplace:
            raise NotProvided("JAX arrays are immutable: no in-place dropout")
        self.module = eqx.nn.Dropout(p)

    def _f(self):
        if not self._training:
            return lambda xx: self.module(xx, inference=True)
        key = self.impl.next_key()
        return lambda xx: self.module(xx, key=key, inference=False)

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        t = _tensor(x, dtype, layout)
        y = self._f()(t)
        return Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        t = _tensor(x, dtype, layout)
        y, vjp = jax.vjp(self._f(), t)
        (dx,) = vjp(_tensor(dy, dtype, "contiguous").astype(y.dtype))
        return Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False, dx=_np(dx))



class EqxBatchNorm(FlagModeLayer):
    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, f"BatchNorm{dims}d", kwargs)
        self.dims, self.config, self.num_features = dims, dict(config), kwargs["num_features"]
        self.param_dtype = "float32"
        self._build()

    def _build(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model, self.bstate = eqx.nn.make_with_state(eqx.nn.BatchNorm)(
                self.num_features, axis_name="batch", mode="batch", dtype=JNP[self.param_dtype], **self.config)

    def _fn(self):
        inference = not self._training

        def f(xx, wb, st):
            m = self.model
            if wb is not None:
                m = eqx.tree_at(lambda mm: (mm.weight, mm.bias), m, wb)
            return jax.vmap(lambda a, s: m(a, s, inference=inference), axis_name="batch",
                            in_axes=(0, None), out_axes=(0, None))(xx, st)
        return f

    def _run(self, x, dtype, layout, dy=None):
        t = _tensor(x, dtype, layout)
        f = self._fn()
        wb = (self.model.weight, self.model.bias) if self.model.weight is not None else None
        out_grads = None
        if dy is None:
            y, st = f(t, wb, self.bstate)
        else:
            y, vjp, st = jax.vjp(lambda xx, ww: f(xx, ww, self.bstate), t, wb, has_aux=True)
            out_grads = vjp(_tensor(dy, dtype, "contiguous").astype(y.dtype))
        self.bstate = st
        out = Output(y=_np(y), dtype=_dtype_name(y), x_after=_np(t), shares_input_memory=False)
        if out_grads is not None:
            out.dx = _np(out_grads[0])
            if wb is not None:
                out.dweight, out.dbias = _np(out_grads[1][0]), _np(out_grads[1][1])
        return out

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        return self._run(x, dtype, layout)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        return self._run(x, dtype, layout, dy)

    def state(self):
        m = self.model
        mean, var = self.bstate.get(m.batch_state_index)
        return dict(weight=_np(m.weight), bias=_np(m.bias), running_mean=_np(mean), running_var=_np(var),
                    num_batches_tracked=int(self.bstate.get(m.batch_counter)), param_dtype=self.param_dtype)

    def load(self, **values):
        m = self.model
        arr = (lambda v: jnp.asarray(round_to(np.asarray(v, np.float64), self.param_dtype), dtype=JNP[self.param_dtype]))
        for key, value in values.items():
            if key in ("weight", "bias"):
                if m.weight is None:
                    raise NotProvided("eqx.nn.BatchNorm(channelwise_affine=False) has no weight/bias")
                m = eqx.tree_at(lambda mm: getattr(mm, key), m, arr(value))
            elif key in ("running_mean", "running_var"):
                mean, var = self.bstate.get(m.batch_state_index)
                mean, var = (arr(value), var) if key == "running_mean" else (mean, arr(value))
                self.bstate = self.bstate.set(m.batch_state_index, (mean, var))
            elif key == "num_batches_tracked":
                old = self.bstate.get(m.batch_counter)
                self.bstate = self.bstate.set(m.batch_counter, old * 0 + int(value))   # keeps its (weak) dtype
            else:
                raise NotProvided(f"eqx.nn.BatchNorm has no {key}")
        self.model = m

    def to(self, dtype):
        values = self.state()
        self.param_dtype = dtype
        self._build()
        self.load(**{k: v for k, v in values.items() if k != "param_dtype" and v is not None})

    def roundtrip(self):
        buf = io.BytesIO()
        eqx.tree_serialise_leaves(buf, (self.model, self.bstate))
        fresh = EqxBatchNorm(self.impl, self.dims, self.kwargs, self.config)
        fresh.to(self.param_dtype)
        buf.seek(0)
        fresh.model, fresh.bstate = eqx.tree_deserialise_leaves(buf, (fresh.model, fresh.bstate))
        fresh._training = self._training
        return fresh


class EqxImplementation(Implementation):
    name = "equinox"
    convention = "equinox"
    cost_factor = 20.0   # measured: a quick audit ~20-30x torch's on this machine (vmap + per-call dispatch)

    def __init__(self):
        from importlib.metadata import version
        self.version = f"equinox {version('equinox')}, jax {jax.__version__}"
        self.target = "eqx.nn.Dropout / eqx.nn.BatchNorm(mode='batch')"
        self._key = jax.random.key(0)

    def provides(self, kind):
        return kind in ("Dropout", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")

    def expresses(self, kind, **o):
        # momentum: "a value between 0 and 1 exclusive" (eqx.nn.BatchNorm docs), so torch's 0 and 1 are out
        return not (o.get("inplace") or ("momentum" in o and o["momentum"] in (None, 0, 0.0, 1, 1.0))
                    or o.get("track_running_stats") is False)

    def next_key(self):
        self._key, sub = jax.random.split(self._key)
        return sub

    def seed(self, seed):
        self._key = jax.random.key(int(seed))

    def rng_state(self):
        return np.asarray(jax.random.key_data(self._key)).tobytes()

    def dropout(self, p=0.5, inplace=False):
        return EqxDropout(self, p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        raise NotProvided("Equinox has no channel dropout (eqx.nn.Dropout is element-wise)")

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_kwargs("eqx.nn.BatchNorm", dims, num_features, eps, momentum, affine,
                                track_running_stats)
        if momentum in (0, 1):
            raise NotProvided("eqx.nn.BatchNorm documents momentum 'between 0 and 1 exclusive'")
        from dropnorm.spec import conventions
        config = dict(eps=eps, momentum=conventions.get("equinox").framework_momentum(momentum),
                      channelwise_affine=affine)
        return EqxBatchNorm(self, dims, kw, config)

    def batchnorm_defaults(self, dims, num_features):
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return EqxBatchNorm(self, dims, kw, {})


def load(name: str = "equinox", device: str = "cpu") -> EqxImplementation:
    """--impl equinox (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return EqxImplementation()
