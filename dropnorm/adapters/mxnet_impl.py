"""Adapter for Apache MXNet 1.9's Gluon layers on the CPU (--impl mxnet): gluon.nn.Dropout and
gluon.nn.BatchNorm, run imperatively (not hybridized).

MXNet 1.9.1 needs numpy < 2, so it is audited from its own venv (pip install 'dropnorm[mxnet]'
into an environment of its own; `dropnorm matrix --python` runs it from there).

Convention "mxnet" (spec/conventions.toml): momentum weighs the old value (default 0.9), the
running variance is fed the batch variance data_var that training normalises with (the biased one),
eps 1e-5 (the Gluon layer's default; the raw operator's is 1e-3), channel axis `axis` (1 here),
one rank-generic class, a global generator (mx.random.seed), no training-call counter.

Mapping of the torch-style interface:
  Dropout(p)           gluon.nn.Dropout(rate=p) (axes=(): element-wise)
  Dropout1d/2d/3d(p)   gluon.nn.Dropout(rate=p, axes=<the spatial axes>): the mask is shared along
                       `axes`, so one draw per (n, c) of a batched input, per c of a no-batch one
                       (Dropout1d (C, L), Dropout3d (C, D, H, W)); Dropout2d reads (N, C, L) as batched
  BatchNormNd(C, eps, momentum, affine)
                       gluon.nn.BatchNorm(axis=1, momentum=1 - momentum, epsilon=eps,
                       center=affine, scale=affine, in_channels=C), initialize(ctx=mx.cpu());
                       affine=False is center=False, scale=False: gamma and beta still exist but
                       are fixed (grad_req 'null', gamma used as 1, beta 0), reported as absent
  train()/eval()       a flag: training calls run under autograd.record(train_mode=True) (the way
                       Gluon trains; forward_backward then calls backward), eval calls under
                       autograd.predict_mode() (forward) or autograd.record(train_mode=False)
                       (forward_backward). Forward is never followed by a hidden backward: MXNet's
                       CPU BatchNorm updates its running statistics in the backward pass only
                       (apache/mxnet#853), and the audit shows that as it is
                       (docs/findings/mxnet-batchnorm-running-stats-updated-in-backward.md)
  layouts              MXNet NDArrays are always dense row-major: "transposed"/"channels_last" are
                       mx.nd.transpose of an array stored in that order, "strided" an
                       mx.nd.slice(step=2) of an array twice as long in the last axis; the layer
                       receives the operator's (dense) result
  empty input          run under mx.util.np_shape(True): MXNet 1.x's legacy shapes read 0 as an unknown
                       dimension, so no operator runs on an empty array without NumPy shape semantics
  dtypes               float64 (float64 parameters), float32, float16 input with float32 parameters
                       (Gluon's BatchNorm.cast('float16') keeps float32 parameters, by design);
                       bfloat16 not provided (numpy has no bfloat16 to build arrays from)
  seed(s), RNG         mx.random.seed(s); MXNet exposes no generator state (rng_state not provided)
  state                gamma, beta, running_mean, running_var (Parameter.data()); no counter
  load                 Parameter.set_data
  roundtrip            save_parameters(file) -> a fresh layer's load_parameters(file)
  gradients            autograd: x.attach_grad(), y.backward(dy, train_mode=<the layer's mode>);
                       gamma.grad(), beta.grad(). NDArray.backward's train_mode defaults to True
                       whatever the recording mode was: an eval-mode gradient needs train_mode=False
                       (else BatchNorm backpropagates the training formula with the running statistics
                       in place of the batch statistics, and updates them)
Not provided: inplace, momentum=None, track_running_stats=False (use_global_stats=True is eval's
normalisation, not batch statistics in eval), bfloat16, float16 parameters, gradcheck, rng_state.
"""
from __future__ import annotations

import ctypes
import os
import tempfile

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import FlagModeLayer, Implementation, NotProvided, Output, RunLayer
from dropnorm.adapters.layouts import storage_permutation
from dropnorm.spec.dtypes import round_to
from dropnorm.spec.kinds import CHANNEL_RANKS

mx = c.require("mxnet", "mxnet", "mxnet")
from mxnet import autograd, gluon  # noqa: E402

NP = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
HALF = ("float16", "bfloat16")
CTX = mx.cpu()


def _check_dtype(dtype: str) -> None:
    if dtype not in NP:
        raise NotProvided(f"mxnet: no {dtype} arrays from numpy (numpy has no bfloat16)")


def tensor(x: np.ndarray, dtype: str, layout: str = "contiguous"):
    """An NDArray of `dtype` holding x's values, produced by an operator from storage in `layout`'s
    order (MXNet has no strided arrays)."""
    _check_dtype(dtype)
    v = np.asarray(round_to(x, dtype), dtype=np.float64)
    if v.ndim == 0 or layout == "contiguous":
        return mx.nd.array(v, ctx=CTX, dtype=NP[dtype])
    perm = storage_permutation(v.ndim, layout)
    if perm is None:   # strided: every other element of a buffer twice as long in the last axis
        buf = np.zeros(v.shape[:-1] + (2 * v.shape[-1],))
        buf[..., ::2] = v
        stored = mx.nd.array(buf, ctx=CTX, dtype=NP[dtype])
        return mx.nd.slice(stored, begin=(None,) * v.ndim, end=(None,) * v.ndim,
                           step=(1,) * (v.ndim - 1) + (2,))
    stored = mx.nd.array(np.ascontiguousarray(v.transpose(perm)), ctx=CTX, dtype=NP[dtype])
    return mx.nd.transpose(stored, axes=tuple(int(i) for i in np.argsort(perm)))


def numpy(a) -> np.ndarray | None:
    return None if a is None else np.array(a.asnumpy(), dtype=np.float64)


def _dtype_name(a) -> str:
    return np.dtype(a.dtype).name


def _data_ptr(a) -> int | None:
    p = ctypes.c_void_p()
    try:
        mx.base.check_call(mx.base._LIB.MXNDArrayGetData(a.handle, ctypes.byref(p)))
    except Exception:  # noqa: BLE001 - no pointer: report no sharing
        return None
    return p.value


def _shares(a, b) -> bool:
    if a.size == 0 or b.size == 0:
        return a is b
    pa, pb = _data_ptr(a), _data_ptr(b)
    return pa is not None and pa == pb


class _MxLayer(RunLayer, FlagModeLayer):
    def _mode(self, backward: bool):
        """The autograd scope of one call: training records (Gluon's training loop), eval predicts."""
        if self._training:
            return autograd.record(train_mode=True)
        return autograd.record(train_mode=False) if backward else autograd.predict_mode()

    def _call(self, block, x, dtype, layout, dy):
        """(y, t): the block run on x under this layer's mode, then backward with dy when given."""
        import contextlib
        # MXNet 1.x's legacy shapes read a 0 as an unknown dimension ('Shape dim size cannot be a negative
        # value -1' for any operator on an empty array); zero-size arrays exist only under its NumPy shape
        # semantics (mx.util.set_np_shape: 'tuples with 0 elements ... represent the shapes of zero-size
        # tensors'), which an empty input is run under
        scope = mx.util.np_shape(True) if 0 in np.shape(x) else contextlib.nullcontext()
        with scope:
            t = tensor(x, dtype, layout)
            if dy is not None:
                t.attach_grad()
            with self._mode(dy is not None):
                y = block(t)
            if dy is not None:
                y.backward(mx.nd.array(np.asarray(dy, np.float64), ctx=CTX, dtype=y.dtype),
                           train_mode=self._training)
        return y, t


class MxDropout(c.StatelessDropout, _MxLayer):
    def __init__(self, impl, kind, p, inplace):
        super().__init__(impl, kind, dict(p=p, inplace=inplace))
        self.p = p
        self._blocks = {}
        if kind == "Dropout":
            self._blocks[None] = gluon.nn.Dropout(rate=p)
        else:
            self._axes(CHANNEL_RANKS[kind]["batched"])   # constructed here, so that bad p shows at construction

    def _axes(self, ndim: int):
        """The block for an input of rank ndim: mask shared along the spatial axes."""
        if self.kind == "Dropout":
            return self._blocks[None]
        first = 1 if ndim == CHANNEL_RANKS[self.kind]["unbatched"] else 2
        axes = tuple(range(first, ndim))
        if axes not in self._blocks:
            self._blocks[axes] = gluon.nn.Dropout(rate=self.p, axes=axes)
        return self._blocks[axes]

    def _run(self, x, dtype, layout, dy=None):
        y, t = self._call(self._axes(np.ndim(x)), x, dtype, layout, dy)
        out = Output(y=numpy(y), dtype=_dtype_name(y), x_after=numpy(t), shares_input_memory=_shares(y, t))
        if dy is not None:
            out.dx = numpy(t.grad)
        return out


NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean", "running_var": "running_var"}


class MxBatchNorm(_MxLayer):
    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, f"BatchNorm{dims}d", kwargs)
        self.dims, self.config = dims, dict(config)
        self.affine = bool(kwargs["affine"])
        self.param_dtype = "float32"
        self.block = self._build()

    def _build(self):
        block = gluon.nn.BatchNorm(axis=1, in_channels=self.kwargs["num_features"], **self.config)
        block.initialize(ctx=CTX)
        if self.param_dtype != "float32":
            block.cast(self.param_dtype)
        return block

    def _param(self, key):
        if key in ("weight", "bias") and not self.affine:
            return None   # center=False, scale=False: fixed (grad_req 'null'), not learnable
        return getattr(self.block, NAMES[key])

    def _run(self, x, dtype, layout, dy=None):
        _check_dtype(dtype)
        if dtype == "float64" and self.param_dtype != "float64" or \
                dtype != "float64" and self.param_dtype == "float64":
            raise NotProvided(f"mxnet BatchNorm: {dtype} input with {self.param_dtype} parameters (the operator "
                              f"takes float64 parameters with float64 data only)")
        y, t = self._call(self.block, x, dtype, layout, dy)
        out = Output(y=numpy(y), dtype=_dtype_name(y), x_after=numpy(t), shares_input_memory=_shares(y, t))
        if dy is not None:
            out.dx = numpy(t.grad)
            if self.affine:
                out.dweight, out.dbias = numpy(self.block.gamma.grad()), numpy(self.block.beta.grad())
        return out

    def state(self):
        out = {}
        for key in NAMES:
            p = self._param(key)
            out[key] = None if p is None else numpy(p.data())
        out.update(num_batches_tracked=None, param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        for key, value in values.items():
            p = self._param(key) if key in NAMES else None
            if p is None:
                raise NotProvided(f"gluon.nn.BatchNorm has no {key} (convention mxnet: no counter; "
                                  f"center=False, scale=False has no learnable gamma/beta)")
            v = np.asarray(round_to(np.asarray(value, np.float64), self.param_dtype), dtype=np.float64)
            p.set_data(mx.nd.array(v, ctx=CTX, dtype=p.dtype))

    def to(self, dtype):
        if dtype in HALF:
            raise NotProvided(f"gluon.nn.BatchNorm keeps float32 parameters under cast({dtype!r}) "
                              f"(_BatchNorm.cast maps float16 to float32); no {dtype} parameters")
        self.block.cast(dtype)
        self.param_dtype = dtype

    def roundtrip(self):
        fresh = MxBatchNorm(self.impl, self.dims, self.kwargs, self.config)
        if self.param_dtype != "float32":
            fresh.to(self.param_dtype)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bn.params")
            self.block.save_parameters(path)
            fresh.block.load_parameters(path, ctx=CTX)
        fresh.train(self.training)
        return fresh


class MxImplementation(Implementation):
    name = "mxnet"
    convention = "mxnet"
    cost_factor = 3.0   # imperative NDArray calls: a few times torch's per-call cost
    limits = (c.no_inplace("gluon.nn.Dropout has no in-place argument"), *c.fixed_statistics("gluon.nn.BatchNorm"))

    def __init__(self):
        self.version = f"mxnet {mx.__version__} (cpu), numpy {np.__version__}"
        self.target = "mxnet.gluon.nn Dropout (axes) / BatchNorm, imperative"

    def provides(self, kind):
        return kind in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "BatchNorm1d", "BatchNorm2d",
                        "BatchNorm3d")

    def expresses(self, kind, **o):
        """The declared limits, then the dtypes (refused where the calls run: tensor, MxBatchNorm)."""
        if not super().expresses(kind, **o):
            return False
        dtype, pdtype = o.get("dtype"), o.get("param_dtype")
        if dtype == "bfloat16" or pdtype in HALF:
            return False
        if kind.startswith("BatchNorm") and dtype is not None and pdtype is not None:
            return (dtype == "float64") == (pdtype == "float64")
        return True

    def seed(self, seed):
        mx.random.seed(int(seed))

    def rng_state(self):
        raise NotProvided("mxnet exposes no generator state (mx.random.seed only sets it)")

    def _dropout(self, kind, p, inplace):
        self.refuse(kind, p=p, inplace=inplace)
        return MxDropout(self, kind, p, inplace)

    def dropout(self, p=0.5, inplace=False):
        return self._dropout("Dropout", p, inplace)

    def dropout1d(self, p=0.5, inplace=False):
        return self._dropout("Dropout1d", p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        return self._dropout("Dropout2d", p, inplace)

    def dropout3d(self, p=0.5, inplace=False):
        return self._dropout("Dropout3d", p, inplace)

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_keywords(self, dims, num_features, eps, momentum, affine, track_running_stats)
        from dropnorm.spec import conventions
        config = dict(momentum=conventions.get("mxnet").framework_momentum(momentum), epsilon=eps,
                      center=affine, scale=affine)
        return MxBatchNorm(self, dims, kw, config)

    def batchnorm_defaults(self, dims, num_features):
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return MxBatchNorm(self, dims, kw, {})


def load(name: str = "mxnet", device: str = "cpu") -> MxImplementation:
    """--impl mxnet (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return MxImplementation()
