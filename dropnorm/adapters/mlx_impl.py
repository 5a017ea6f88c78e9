"""Adapter for MLX's mlx.nn.Dropout, Dropout2d and BatchNorm on the CPU (--impl mlx).

Convention "mlx" (spec/conventions.toml): momentum weighs the new batch (torch's sense,
default 0.1), the running variance is fed the unbiased batch variance (ddof=1, since
ml-explore/mlx PR #3817; training still normalises with the biased one), eps 1e-5, channels
last, one class for 2-, 3- and 4-D input, a global PRNG (mx.random.seed).

Mapping of the torch-style interface:
  Dropout(p)           nn.Dropout(p); p = 1 is not provided (MLX documents p in [0, 1) and
                       raises ValueError for p = 1)
  Dropout2d(p)         nn.Dropout2d(p) on the input moved to channels last (N, H, W, C), the
                       result moved back: one draw per (N, C)
  BatchNorm1d/2d(C, eps, momentum, affine, track_running_stats)
                       nn.BatchNorm(C, eps=eps, momentum=momentum, affine=affine,
                       track_running_stats=track_running_stats) on the input with axis 1
                       moved last (NC, NLC, NHWC), the result moved back
  BatchNorm3d          not provided: nn.BatchNorm takes 2-, 3- or 4-D input only
  layouts              "transposed" and "channels_last" are mx.transpose views of an array
                       stored in that order, "strided" a [..., ::2] slice: MLX's own strided arrays
  train()/eval()       Module.train(mode) / Module.training
  seed(s), RNG         mx.random.seed(s); the global key mx.random.state is the generator state
  state                weight, bias, running_mean, running_var (frozen parameters); no counter
  roundtrip            Module.save_weights(.npz) -> a fresh module's load_weights
  gradients            mx.vjp of the module call (the running statistics are updated inside it,
                       as in a training step under nn.value_and_grad)
Not provided: inplace, momentum=None, BatchNorm3d, p = 1, gradcheck.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import Implementation, Limit, Layer, NotProvided, Output
from dropnorm.adapters.layouts import storage_permutation
from dropnorm.spec.dtypes import round_to

mx = c.require("mlx.core", "mlx", "mlx")
import mlx  # noqa: E402
import mlx.nn as nn  # noqa: E402

MX = {"float64": mx.float64, "float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
NAMES = {v: k for k, v in MX.items()}


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("mlx")
    except Exception:  # pragma: no cover
        return getattr(mx, "__version__", "?")


def _array(v: np.ndarray, dtype: str):
    """mx.array(v) would make float64 values float32 first: float64 is asked for explicitly."""
    if dtype == "float64":
        return mx.array(v, dtype=mx.float64)
    return mx.array(v.astype(np.float32)).astype(MX[dtype])


def tensor(x: np.ndarray, dtype: str, layout: str = "contiguous"):
    """An mx.array of `dtype` holding x's values, stored in `layout` (an MLX strided view)."""
    v = np.asarray(round_to(x, dtype), dtype=np.float64)
    perm = storage_permutation(v.ndim, layout) if v.ndim else tuple()
    if layout == "strided" and v.ndim:
        buf = np.zeros(v.shape[:-1] + (2 * v.shape[-1],))
        buf[..., ::2] = v
        return _array(buf, dtype)[..., ::2]
    if not perm or perm == tuple(range(v.ndim)):
        return _array(v, dtype)
    stored = _array(np.ascontiguousarray(v.transpose(perm)), dtype)
    return mx.transpose(stored, tuple(int(i) for i in np.argsort(perm)))


def numpy(a) -> np.ndarray | None:
    if a is None:
        return None
    if a.dtype != mx.float64:
        a = a.astype(mx.float32)
    return np.array(a, dtype=np.float64)


class _MlxLayer(Layer):
    module: "nn.Module"

    def train(self, mode: bool = True) -> None:
        self.module.train(bool(mode))

    @property
    def training(self) -> bool:
        return bool(self.module.training)


class MlxDropout(c.StatelessDropout, _MlxLayer):
    def __init__(self, impl, kind, p, inplace):
        self.impl, self.kind, self.kwargs = impl, kind, dict(p=p, inplace=inplace)
        self.module = (nn.Dropout if kind == "Dropout" else nn.Dropout2d)(p)

    def _fn(self, ndim):
        if self.kind == "Dropout":
            return self.module
        if ndim != 4:
            raise NotProvided(f"Dropout2d on {ndim}-D input: nn.Dropout2d takes NHWC (or HWC) input only")
        return lambda t: mx.moveaxis(self.module(mx.moveaxis(t, 1, -1)), -1, 1)

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        t = tensor(x, dtype, layout)
        y = self._fn(t.ndim)(t)
        mx.eval(y)
        return Output(y=numpy(y), dtype=NAMES.get(y.dtype, str(y.dtype)), x_after=numpy(t),
                      shares_input_memory=False)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        t = tensor(x, dtype, layout)
        f = self._fn(t.ndim)
        (y,), (dx,) = mx.vjp(lambda a: [f(a)], [t], [tensor(dy, dtype)])
        mx.eval(y, dx)
        return Output(y=numpy(y), dtype=NAMES.get(y.dtype, str(y.dtype)), x_after=numpy(t),
                      shares_input_memory=False, dx=numpy(dx))



KEYS = ("weight", "bias", "running_mean", "running_var")


class MlxBatchNorm(_MlxLayer):
    def __init__(self, impl, dims, kwargs, config):
        self.impl, self.kind, self.kwargs = impl, f"BatchNorm{dims}d", dict(kwargs)
        self.dims, self.config = dims, dict(config)
        self.module = nn.BatchNorm(kwargs["num_features"], **self.config)
        self.param_dtype = "float32"

    def _call(self, t):
        return mx.moveaxis(self.module(mx.moveaxis(t, 1, -1)), -1, 1)

    def _out(self, y, t, grads=None):
        out = Output(y=numpy(y), dtype=NAMES.get(y.dtype, str(y.dtype)), x_after=numpy(t),
                     shares_input_memory=False)
        if grads is not None:
            out.dx, out.dweight, out.dbias = (numpy(g) for g in grads)
        return out

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        t = tensor(x, dtype, layout)
        y = self._call(t)
        mx.eval(y, self.module.parameters())
        return self._out(y, t)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        t = tensor(x, dtype, layout)
        m = self.module
        affine = "weight" in m
        w0, b0 = (m.weight, m.bias) if affine else (None, None)

        def f(a, *wb):
            if affine:
                m.weight, m.bias = wb
            return [self._call(a)]

        primals = [t, w0, b0] if affine else [t]
        try:
            (y,), grads = mx.vjp(f, primals, [tensor(dy, dtype).astype(t.dtype)])
        finally:
            if affine:
                m.weight, m.bias = w0, b0
        mx.eval(y, grads, m.parameters())
        grads = list(grads) + [None] * (3 - len(grads))
        return self._out(y, t, grads)

    def state(self):
        p = self.module.parameters()
        out = {k: numpy(p.get(k)) for k in KEYS}
        out.update(num_batches_tracked=None, param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        for key, value in values.items():
            if key not in KEYS or key not in self.module:
                raise NotProvided(f"mlx BatchNorm has no {key} (convention mlx: no counter; affine=False has "
                                  f"no weight/bias; track_running_stats=False has no running statistics)")
            setattr(self.module, key, _array(round_to(np.asarray(value, np.float64), self.param_dtype),
                                             self.param_dtype))

    def to(self, dtype):
        self.param_dtype = dtype
        self.module.set_dtype(MX[dtype])

    def roundtrip(self):
        fresh = MlxBatchNorm(self.impl, self.dims, self.kwargs, self.config)
        fresh.to(self.param_dtype)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bn.npz")
            self.module.save_weights(path)
            fresh.module.load_weights(path)
        fresh.module.train(self.module.training)
        return fresh


class MlxImplementation(Implementation):
    name = "mlx"
    convention = "mlx"

    def __init__(self):
        self.version = f"mlx {_version()} ({mx.default_device()})"
        self.target = "mlx.nn Dropout / Dropout2d / BatchNorm"

    missing = {"BatchNorm3d": "mlx.nn.BatchNorm takes 2-, 3- or 4-D input only (no 5-D BatchNorm3d)"}
    limits = (c.no_inplace("MLX arrays are immutable: no in-place dropout"),
              Limit.on("p", lambda p: p == 1, "MLX Dropout documents p in [0, 1): p = 1 raises ValueError "
                       "('The dropout probability 1 is not in [0, 1)')", kinds=("Dropout",)),
              Limit.on("momentum", lambda m: m is None, "mlx.nn.BatchNorm has no cumulative average (momentum=None)"))

    def seed(self, seed):
        mx.random.seed(int(seed) % 2 ** 64)

    def rng_state(self):
        return np.array(mx.random.state[0]).tobytes()

    def dropout(self, p=0.5, inplace=False):
        self.refuse("Dropout", p=p, inplace=inplace)
        return MlxDropout(self, "Dropout", p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        self.refuse("Dropout2d", p=p, inplace=inplace)
        return MlxDropout(self, "Dropout2d", p, inplace)

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_keywords(self, dims, num_features, eps, momentum, affine, track_running_stats)
        config = dict(eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats)
        return MlxBatchNorm(self, dims, kw, config)

    def batchnorm_defaults(self, dims, num_features):
        self.refuse(f"BatchNorm{dims}d")
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return MlxBatchNorm(self, dims, kw, {})


def load(name: str = "mlx", device: str = "cpu") -> MlxImplementation:
    """--impl mlx (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return MlxImplementation()
