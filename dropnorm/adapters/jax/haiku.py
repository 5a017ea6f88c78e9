"""Adapter for Haiku's hk.dropout and hk.BatchNorm on JAX (--impl haiku).

Convention "haiku" (spec/conventions.toml): decay_rate weighs the old value and is a required
argument (no default), eps 1e-5, the running variance is fed the biased batch variance
(mean_of_squares - mean^2), and the running statistics are hk.ExponentialMovingAverage's
zero-debiased averages: the layer keeps hidden = decay * hidden + (1 - decay) * value from 0 and
normalises in eval with average = hidden / (1 - decay^counter) ("the Adam debiasing procedure").
The EMA's counter is the training-call counter. JAX runs with jax_enable_x64 so that float64
arrays stay float64.

Mapping of the torch-style interface:
  Dropout(p)           hk.transform(lambda x: hk.dropout(hk.next_rng_key(), p, x)), applied with the
                       adapter's key (split per call) in training. Haiku has no dropout module and no
                       train/eval flag: its documented idiom calls hk.dropout only in training
                       (`if is_training: x = hk.dropout(...)`), so eval returns the input (the adapter's
                       branch). hk.dropout checks rate in [0, 1) at each call (ValueError): p = 1 is
                       not provided.
  Dropout2d(p)         the same with broadcast_dims = (2, ..., ndim - 1): one draw per (N, C)
  BatchNormNd(C, eps, momentum, affine)
                       hk.transform_with_state of hk.BatchNorm(create_scale=affine,
                       create_offset=affine, decay_rate=1 - momentum, eps=eps,
                       data_format="channels_first", name="batch_norm")(x, is_training=training);
                       params and state are created by init on zeros of the parameter dtype, so the
                       EMAs start at Haiku's zeros (running_var 0, not 1) with counter 0. Haiku's
                       parameters and EMAs take the input's rank ((1, C, 1, ...)): the adapter keeps
                       them per channel and reshapes them to each input's rank.
  half-precision input with float32 parameters
                       Haiku's mixed-precision route: hk.mixed_precision.push_policy(hk.BatchNorm,
                       jmp.Policy(param_dtype=float32, compute_dtype=float32, output_dtype=<input
                       dtype>)), the batch-norm policy of Haiku's ImageNet example (mp_bn_policy,
                       default params=f32, compute=f32); without a policy hk.BatchNorm computes in the
                       dtypes jax's promotion gives and returns float32
  state                weight = scale, bias = offset; running_mean / running_var = the EMAs' debiased
                       `average` (what eval normalises with); num_batches_tracked = mean_ema's counter
  load                 sets `average`, and `hidden` = average * (1 - decay^counter), so that the next
                       update continues from the loaded values (both EMAs' counters for the counter)
  roundtrip            the params and state dicts through numpy's savez (Haiku has no serialisation
                       API; its examples save the dicts) into a fresh layer
  gradients            jax.vjp of apply with respect to x and the params, the new state as aux
Not provided: inplace, momentum=None, torch momentum 0 (decay_rate 1: hk.ExponentialMovingAverage
documents decay in [0, 1)), track_running_stats=False (hk.BatchNorm always keeps and updates its
EMAs in training; test_local_stats only changes what eval normalises with), Dropout p = 1,
gradcheck, the framework's default momentum (decay_rate has none).
"""
from __future__ import annotations

import io

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import BATCHNORM_RANKS, Limit, NotProvided
from dropnorm.adapters.jax import require_jax

jax = require_jax("haiku", "haiku")
hk = c.require("haiku", "haiku", "haiku")
jmp = c.require("jmp", "haiku", "haiku")
import jax.numpy as jnp  # noqa: E402

from dropnorm.adapters.jax import base  # noqa: E402
from dropnorm.adapters.jax.base import JNP, output, tensor, to_numpy  # noqa: E402

HALF = ("float16", "bfloat16")
MODULE = "batch_norm"
EMAS = {"running_mean": f"{MODULE}/~/mean_ema", "running_var": f"{MODULE}/~/var_ema"}
PARAMS = {"weight": "scale", "bias": "offset"}


class HkDropout(base.JaxDropout):
    """hk.dropout with a fresh key in training; Haiku's idiom calls it in training only, so eval returns
    the input."""

    def _f(self, ndim):
        if not self._training:
            return lambda xx: xx
        broadcast = tuple(range(2, ndim)) if self.kind == "Dropout2d" else ()
        f = hk.transform(lambda xx: hk.dropout(hk.next_rng_key(), self.p, xx, broadcast_dims=broadcast))
        key = self.impl.next_key()
        return lambda xx: f.apply({}, key, xx)


class HkBatchNorm(base.JaxBatchNorm):
    """hk.BatchNorm under hk.transform_with_state; params and state kept by the adapter."""

    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, dims, kwargs, config)
        self.decay = self.config["decay_rate"]
        self.fn = hk.transform_with_state(self._module_call)
        self._init()

    def _module_call(self, x, is_training):
        return hk.BatchNorm(data_format="channels_first", name=MODULE, **self.config)(x, is_training)

    def _init(self):
        """Haiku's init on zeros of the parameter dtype: scale 1, offset 0, EMAs 0 with counter 0."""
        self.ndim = BATCHNORM_RANKS[self.dims][0]
        x0 = jnp.zeros((2, self.num_features) + (1,) * (self.ndim - 2), JNP[self.param_dtype])
        self.params, self.hstate = self.fn.init(None, x0, True)

    def _to_rank(self, ndim):
        """Reshape the (1, C, 1, ...) parameters and EMAs to an input of rank ndim."""
        if ndim == self.ndim or ndim < 2:
            return
        shape = (1, self.num_features) + (1,) * (ndim - 2)
        fix = (lambda a: a.reshape(shape) if a.ndim == self.ndim else a)
        self.params = jax.tree_util.tree_map(fix, self.params)
        self.hstate = jax.tree_util.tree_map(fix, self.hstate)
        self.ndim = ndim

    def _policy(self, dtype):
        """Haiku's batch-norm mixed-precision policy for half input with float32 parameters."""
        import contextlib
        if dtype in HALF and self.param_dtype == "float32":
            return hk.mixed_precision.push_policy(hk.BatchNorm, jmp.Policy(
                param_dtype=jnp.float32, compute_dtype=jnp.float32, output_dtype=JNP[dtype]))
        return contextlib.nullcontext()

    def _run(self, x, dtype, layout, dy=None):
        t = tensor(x, dtype, layout)
        self._to_rank(t.ndim)
        training = self._training
        out_grads = None
        with self._policy(dtype):
            if dy is None:
                y, st = self.fn.apply(self.params, self.hstate, None, t, training)
            else:
                y, vjp, st = jax.vjp(lambda xx, pp: self.fn.apply(pp, self.hstate, None, xx, training),
                                     t, self.params, has_aux=True)
                out_grads = vjp(tensor(dy, dtype).astype(y.dtype))
        self.hstate = st
        if out_grads is None:
            return output(y, t)
        g = out_grads[1].get(MODULE, {})
        return output(y, t, dx=out_grads[0], dweight=g["scale"].reshape(-1) if "scale" in g else None,
                      dbias=g["offset"].reshape(-1) if "scale" in g else None)

    def _vector(self, a):
        return None if a is None else to_numpy(a).reshape(-1)

    def state(self):
        p = self.params.get(MODULE, {})
        out = {k: self._vector(p.get(name)) for k, name in PARAMS.items()}
        out.update({k: self._vector(self.hstate[ema]["average"]) for k, ema in EMAS.items()})
        out.update(num_batches_tracked=int(self.hstate[EMAS["running_mean"]]["counter"]),
                   param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        params = {k: dict(v) for k, v in self.params.items()}
        st = {k: dict(v) for k, v in self.hstate.items()}
        shape = (1, self.num_features) + (1,) * (self.ndim - 2)

        def arr(v):
            return self._param(v).reshape(shape)

        for key, value in values.items():
            if key in PARAMS:
                if PARAMS[key] not in params.get(MODULE, {}):
                    raise NotProvided("hk.BatchNorm(create_scale=False, create_offset=False) has no scale/offset")
                params[MODULE][PARAMS[key]] = arr(value)
            elif key in EMAS:
                st[EMAS[key]]["average"] = arr(value)
            elif key == "num_batches_tracked":
                for ema in EMAS.values():
                    st[ema]["counter"] = jnp.asarray(int(value), dtype=st[ema]["counter"].dtype)
            else:
                raise NotProvided(f"hk.BatchNorm has no {key}")
        # the hidden EMA that the loaded average and counter stand for, average = hidden / (1 - d^t), with d
        # as Haiku uses it (converted to the statistics' dtype) and 1 - d^t computed without cancellation
        for ema in EMAS.values():
            a, t = st[ema]["average"], int(st[ema]["counter"])
            d = float(np.asarray(self.decay, dtype=a.dtype))
            factor = -np.expm1(t * np.log1p(-(1.0 - d))) if d > 0 else float(t > 0)
            st[ema]["hidden"] = jnp.asarray(np.asarray(a, np.float64) * factor, dtype=a.dtype)
        self.params, self.hstate = params, st

    def to(self, dtype):
        values = self.state()
        self.param_dtype = dtype
        self._init()
        self.load(**{k: v for k, v in values.items() if k != "param_dtype" and v is not None})

    def roundtrip(self):
        buf = io.BytesIO()
        flat = {f"params|{m}|{n}": np.asarray(v) for m, d in self.params.items() for n, v in d.items()}
        flat.update({f"state|{m}|{n}": np.asarray(v) for m, d in self.hstate.items() for n, v in d.items()})
        np.savez(buf, **{k: (v.astype(np.float32) if v.dtype == jnp.bfloat16 else v) for k, v in flat.items()})
        dtypes = {k: v.dtype for k, v in flat.items()}
        fresh = HkBatchNorm(self.impl, self.dims, self.kwargs, self.config)
        fresh.param_dtype = self.param_dtype
        buf.seek(0)
        params, st = {}, {}
        with np.load(buf) as z:
            for k in z.files:
                kind, m, n = k.split("|")
                (params if kind == "params" else st).setdefault(m, {})[n] = jnp.asarray(z[k], dtype=dtypes[k])
        fresh.params, fresh.hstate, fresh.ndim = params, st, self.ndim
        fresh._training = self._training
        return fresh


class HkImplementation(base.JaxImplementation):
    name = "haiku"
    convention = "haiku"
    cost_factor = 20.0   # as the other JAX adapters: per-call dispatch, no jit
    dropout_layer, batchnorm_layer = HkDropout, HkBatchNorm
    limits = (Limit.on("p", lambda p: p == 1, "hk.dropout documents rate in [0, 1) (ValueError at p = 1)",
                       kinds=("Dropout",)),
              base.IMMUTABLE, *c.fixed_statistics("hk.BatchNorm"),
              # decay_rate = 1 - momentum; 1 (torch's 0, or a momentum whose 1 - m rounds to 1) is outside
              # hk.ExponentialMovingAverage's documented [0, 1)
              Limit.on("momentum", lambda m: m is not None and not 1.0 - m < 1.0,
                       "hk.BatchNorm's EMA documents decay in [0, 1): torch momentum 0 (or one that rounds "
                       "1 - momentum to 1) is decay_rate 1"))

    def __init__(self):
        from importlib.metadata import version
        super().__init__()
        self.version = f"dm-haiku {version('dm-haiku')}, jax {jax.__version__}"
        self.target = "hk.dropout / hk.BatchNorm (hk.transform_with_state)"

    def batchnorm_config(self, eps, momentum, affine):
        return dict(create_scale=affine, create_offset=affine, decay_rate=self.framework_momentum(momentum), eps=eps)

    def batchnorm_defaults(self, dims, num_features):
        raise NotProvided("hk.BatchNorm has no default decay_rate (a required argument)")


def load(name: str = "haiku", device: str = "cpu") -> HkImplementation:
    """--impl haiku (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return HkImplementation()
