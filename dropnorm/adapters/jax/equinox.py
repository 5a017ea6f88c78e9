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

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import Limit, NotProvided
from dropnorm.adapters.jax import require_jax

jax = require_jax("equinox", "equinox")
eqx = c.require("equinox", "equinox", "equinox")

from dropnorm.adapters.jax import base  # noqa: E402
from dropnorm.adapters.jax.base import JNP, output, tensor, to_numpy  # noqa: E402


class EqxDropout(base.JaxDropout):
    """eqx.nn.Dropout called with a fresh key and inference = False in training, inference = True in eval."""

    def __init__(self, impl, kind, p, inplace):
        super().__init__(impl, kind, p, inplace)
        self.module = eqx.nn.Dropout(p)

    def _f(self, ndim):
        if not self._training:
            return lambda xx: self.module(xx, inference=True)
        key = self.impl.next_key()
        return lambda xx: self.module(xx, key=key, inference=False)


class EqxBatchNorm(base.JaxBatchNorm):
    """eqx.nn.BatchNorm(mode="batch") and its State, kept by the adapter; called per sample under
    jax.vmap(axis_name="batch")."""

    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, dims, kwargs, config)
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
        t = tensor(x, dtype, layout)
        f = self._fn()
        wb = (self.model.weight, self.model.bias) if self.model.weight is not None else None
        if dy is None:
            y, self.bstate = f(t, wb, self.bstate)
            return output(y, t)
        y, vjp, st = jax.vjp(lambda xx, ww: f(xx, ww, self.bstate), t, wb, has_aux=True)
        grads = vjp(tensor(dy, dtype).astype(y.dtype))
        self.bstate = st
        return output(y, t, dx=grads[0], dweight=grads[1][0] if wb is not None else None,
                      dbias=grads[1][1] if wb is not None else None)

    def state(self):
        m = self.model
        mean, var = self.bstate.get(m.batch_state_index)
        return dict(weight=to_numpy(m.weight), bias=to_numpy(m.bias), running_mean=to_numpy(mean),
                    running_var=to_numpy(var), num_batches_tracked=int(self.bstate.get(m.batch_counter)),
                    param_dtype=self.param_dtype)

    def load(self, **values):
        m = self.model
        for key, value in values.items():
            if key in ("weight", "bias"):
                if m.weight is None:
                    raise NotProvided("eqx.nn.BatchNorm(channelwise_affine=False) has no weight/bias")
                m = eqx.tree_at(lambda mm: getattr(mm, key), m, self._param(value))
            elif key in ("running_mean", "running_var"):
                mean, var = self.bstate.get(m.batch_state_index)
                mean, var = (self._param(value), var) if key == "running_mean" else (mean, self._param(value))
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
        fresh = self._fresh()
        buf.seek(0)
        fresh.model, fresh.bstate = eqx.tree_deserialise_leaves(buf, (fresh.model, fresh.bstate))
        return fresh


class EqxImplementation(base.JaxImplementation):
    name = "equinox"
    convention = "equinox"
    cost_factor = 20.0   # measured: a quick audit ~20-30x torch's on this machine (vmap + per-call dispatch)
    dropout_layer, batchnorm_layer = EqxDropout, EqxBatchNorm
    missing = {"Dropout2d": "Equinox has no channel dropout (eqx.nn.Dropout is element-wise)"}
    limits = (base.IMMUTABLE, *c.fixed_statistics("eqx.nn.BatchNorm"),
              # "a value between 0 and 1 exclusive" (eqx.nn.BatchNorm docs), so torch's 0 and 1 are out
              Limit.on("momentum", lambda m: m in (0, 1), "eqx.nn.BatchNorm documents momentum 'between 0 and 1 "
                       "exclusive'"))

    def __init__(self):
        from importlib.metadata import version
        super().__init__()
        self.version = f"equinox {version('equinox')}, jax {jax.__version__}"
        self.target = "eqx.nn.Dropout / eqx.nn.BatchNorm(mode='batch')"

    def batchnorm_config(self, eps, momentum, affine):
        return dict(eps=eps, momentum=self.framework_momentum(momentum), channelwise_affine=affine)


def load(name: str = "equinox", device: str = "cpu") -> EqxImplementation:
    """--impl equinox (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return EqxImplementation()
