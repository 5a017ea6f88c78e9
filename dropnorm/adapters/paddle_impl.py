"""Adapter for PaddlePaddle's paddle.nn.Dropout, Dropout2D and BatchNorm1D/2D/3D on the CPU (--impl paddle).

Convention "paddle" (spec/conventions.toml): momentum weighs the old value (default 0.9),
the running variance is fed the biased mini-batch variance (documented formula), eps 1e-5,
one class per rank, channel axis 1 (data_format NCL/NCHW/NCDHW), a global generator (paddle.seed).

Mapping of the torch-style interface:
  Dropout(p, inplace)  paddle.nn.Dropout(p=p, inplace=inplace) (mode "upscale_in_train", the default)
  Dropout2d(p)         paddle.nn.Dropout2D(p=p, data_format="NCHW"); inplace not provided (no argument)
  BatchNormNd(C, eps, momentum, affine)
                       paddle.nn.BatchNorm{1,2,3}D(C, momentum=1 - momentum, epsilon=eps,
                       weight_attr=False, bias_attr=False when affine=False)
  layouts              "transposed"/"channels_last" are paddle.transpose views of a tensor stored
                       in that order (Paddle's strided tensors), "strided" a [..., ::2] slice
  train()/eval()       Layer.train() / Layer.eval() / Layer.training
  seed(s), RNG         paddle.seed(s); paddle.get_rng_state() is the generator state
  state                weight, bias, _mean, _variance; no counter
  roundtrip            paddle.save(state_dict) -> paddle.load -> a fresh layer's set_state_dict
  gradients            paddle autograd (stop_gradient=False, backward of sum(y * dy))
Not provided: float16/bfloat16 BatchNorm and float16 Dropout (no CPU kernels), momentum=None, track_running_stats=False (use_global_stats=False still keeps and
updates the running buffers), Dropout2D inplace, gradcheck.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import Implementation, Limit, NotProvided, Output, RunLayer
from dropnorm.adapters.layouts import storage_permutation
from dropnorm.spec.dtypes import round_to

paddle = c.require("paddle", "paddle", "paddle")

HALF = ("float16", "bfloat16")   # the CPU batch_norm kernel is registered for float64 and float32 only
PD = {"float64": "float64", "float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def tensor(x: np.ndarray, dtype: str, layout: str = "contiguous", grad: bool = False):
    v = np.asarray(round_to(x, dtype), dtype=np.float64)
    if layout == "strided" and v.ndim:
        buf = np.zeros(v.shape[:-1] + (2 * v.shape[-1],))
        buf[..., ::2] = v
        t = paddle.to_tensor(buf).astype(PD[dtype])[..., ::2]
    else:
        perm = storage_permutation(v.ndim, layout) if v.ndim else ()
        if perm and perm != tuple(range(v.ndim)):
            t = paddle.to_tensor(np.ascontiguousarray(v.transpose(perm))).astype(PD[dtype]).transpose(
                [int(i) for i in np.argsort(perm)])
        else:
            t = paddle.to_tensor(v).astype(PD[dtype])
    t.stop_gradient = not grad
    return t


def numpy(t) -> np.ndarray | None:
    if t is None:
        return None
    return np.array(t.astype("float64").numpy(), dtype=np.float64)


def _dtype_name(t) -> str:
    return str(t.dtype).replace("paddle.", "")


class _PaddleLayer(RunLayer):
    module: "paddle.nn.Layer"

    def train(self, mode: bool = True) -> None:
        self.module.train() if mode else self.module.eval()

    @property
    def training(self) -> bool:
        return bool(self.module.training)


class PaddleDropout(c.StatelessDropout, _PaddleLayer):
    def __init__(self, impl, kind, p, inplace):
        self.impl, self.kind, self.kwargs = impl, kind, dict(p=p, inplace=inplace)
        if kind == "Dropout":
            self.module = paddle.nn.Dropout(p=p, inplace=inplace)
        else:
            self.module = paddle.nn.Dropout2D(p=p, data_format="NCHW")

    def _run(self, x, dtype, layout, dy=None):
        if dtype == "float16":
            raise NotProvided("paddle's CPU multiply kernel (used by in-place dropout and by backward) is not "
                              "registered for float16")
        t = tensor(x, dtype, layout, grad=dy is not None)
        src = t if dy is None else t * 1   # an in-place op on a leaf that needs its gradient is refused
        ptr = src.data_ptr() if hasattr(src, "data_ptr") else None
        y = self.module(src)
        out = Output(y=numpy(y), dtype=_dtype_name(y), x_after=numpy(src), shares_input_memory=(
            ptr is not None and hasattr(y, "data_ptr") and y.data_ptr() == ptr))
        if dy is not None:
            (y * tensor(dy, dtype)).sum().backward()
            out.dx = numpy(t.grad) if t.grad is not None else np.zeros(x.shape)
        return out



NAMES = {"weight": "weight", "bias": "bias", "running_mean": "_mean", "running_var": "_variance"}
CLASSES = {1: "BatchNorm1D", 2: "BatchNorm2D", 3: "BatchNorm3D"}


class PaddleBatchNorm(_PaddleLayer):
    def __init__(self, impl, dims, kwargs, config):
        self.impl, self.kind, self.kwargs = impl, f"BatchNorm{dims}d", dict(kwargs)
        self.dims, self.config = dims, dict(config)
        self.module = getattr(paddle.nn, CLASSES[dims])(kwargs["num_features"], **self.config)
        self.param_dtype = "float32"

    def _run(self, x, dtype, layout, dy=None):
        m = self.module
        if dtype in HALF or self.param_dtype in HALF:
            raise NotProvided(f"paddle's CPU batch_norm kernel has no {dtype} input with {self.param_dtype} "
                              f"parameters (registered for float64 and float32 only)")
        t = tensor(x, dtype, layout, grad=dy is not None)
        for p in m.parameters():
            if p.name and p.trainable:
                p.clear_gradient()
        y = m(t)
        out = Output(y=numpy(y), dtype=_dtype_name(y), x_after=numpy(t), shares_input_memory=False)
        if dy is not None:
            (y * tensor(dy, dtype).astype(y.dtype)).sum().backward()
            out.dx = numpy(t.grad)
            if m.weight is not None and m.weight.trainable:
                out.dweight, out.dbias = numpy(m.weight.grad), numpy(m.bias.grad)
        return out

    def _get(self, name):
        v = getattr(self.module, name, None)
        if v is None or (name in ("weight", "bias") and not v.trainable):
            return None
        return v

    def state(self):
        out = {k: numpy(self._get(n)) for k, n in NAMES.items()}
        out.update(num_batches_tracked=None, param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        for key, value in values.items():
            name = NAMES.get(key)
            v = self._get(name) if name else None
            if v is None:
                raise NotProvided(f"paddle BatchNorm has no {key} (convention paddle: no counter; "
                                  f"affine=False has no weight/bias)")
            v.set_value(paddle.to_tensor(np.asarray(round_to(np.asarray(value, np.float64), self.param_dtype),
                                                    dtype=np.float64)).astype(v.dtype))

    def to(self, dtype):
        self.param_dtype = dtype
        self.module.to(dtype=dtype)

    def roundtrip(self):
        fresh = PaddleBatchNorm(self.impl, self.dims, self.kwargs, self.config)
        fresh.to(self.param_dtype)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bn.pdparams")
            paddle.save(self.module.state_dict(), path)
            fresh.module.set_state_dict(paddle.load(path))
        fresh.train(self.training)
        return fresh


class PaddleImplementation(Implementation):
    name = "paddle"
    convention = "paddle"

    def __init__(self):
        paddle.set_device("cpu")
        self.version = f"paddlepaddle {paddle.__version__} (cpu)"
        self.target = "paddle.nn Dropout / Dropout2D / BatchNorm1D/2D/3D"

    limits = (*c.fixed_statistics("paddle BatchNorm"),
              Limit.on("inplace", bool, "paddle.nn.Dropout2D has no inplace argument", kinds=("Dropout2d",)))

    def expresses(self, kind, **o):
        """The declared limits, then the rank and dtypes that paddle refuses itself or the calls refuse (_run)."""
        if not super().expresses(kind, **o):
            return False
        if kind == "Dropout2d" and o.get("ndim", 4) != 4:  # paddle.nn.Dropout2D documents 4-D input only
            return False
        if kind.startswith("BatchNorm") and (o.get("dtype") in HALF or o.get("param_dtype") in HALF):
            return False
        if kind.startswith("Dropout") and o.get("dtype") == "float16":
            return False
        return True

    def seed(self, seed):
        paddle.seed(int(seed))

    def rng_state(self):
        # each GeneratorState prints its seed and engine state (and an object address, left out)
        return " ".join(tok for s in paddle.get_rng_state() for tok in str(s).split()
                        if not tok.startswith("0x")).encode()

    def dropout(self, p=0.5, inplace=False):
        self.refuse("Dropout", p=p, inplace=inplace)
        return PaddleDropout(self, "Dropout", p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        self.refuse("Dropout2d", p=p, inplace=inplace)
        return PaddleDropout(self, "Dropout2d", p, inplace)

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_keywords(self, dims, num_features, eps, momentum, affine, track_running_stats)
        from dropnorm.spec import conventions
        config = dict(momentum=conventions.get("paddle").framework_momentum(momentum), epsilon=eps)
        if not affine:
            config.update(weight_attr=False, bias_attr=False)
        return PaddleBatchNorm(self, dims, kw, config)

    def batchnorm_defaults(self, dims, num_features):
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return PaddleBatchNorm(self, dims, kw, {})


def load(name: str = "paddle", device: str = "cpu") -> PaddleImplementation:
    """--impl paddle (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return PaddleImplementation()
