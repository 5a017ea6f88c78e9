"""Adapter for tinygrad's Tensor.dropout and tinygrad.nn.BatchNorm (--impl tinygrad).

Convention "tinygrad" (spec/conventions.toml): as torch (momentum weighs the new batch,
default 0.1; the running variance is fed var * n/(n-1) since tinygrad PR #807; eps 1e-5;
num_batches_tracked counts training calls), but one rank-generic class (BatchNorm2d =
BatchNorm3d = BatchNorm), no cumulative average, and train/eval is the global context
variable TRAINING (Context(TRAINING=1)), not a module flag.

Mapping of the torch-style interface:
  Dropout(p)           x.dropout(p) inside Context(TRAINING=int(training)); tinygrad has no
                       Dropout class, so p is validated (ValueError) at each call, not at construction
  Dropout2d            not provided: tinygrad has no channel dropout
  BatchNormNd(C, eps, momentum, affine, track_running_stats)
                       nn.BatchNorm(C, eps=eps, affine=affine, track_running_stats=..., momentum=momentum)
                       called inside Context(TRAINING=int(training))
  layouts              "transposed"/"channels_last" are permute views of a tensor stored in that
                       order, "strided" a [..., ::2] view: tinygrad's own movement ops
  seed(s), RNG         Tensor.manual_seed(s); the generator state is Tensor._seed and the
                       per-device counters
  state                weight, bias, running_mean, running_var, num_batches_tracked
  roundtrip            nn.state.get_state_dict -> numpy -> load_state_dict (safe_save needs clang)
  gradients            Tensor.gradient of sum(y * dy) with respect to x, weight, bias
  device               DEV=PYTHON where no clang is installed (tinygrad's CPU device compiles C)
Not provided: inplace, momentum=None, Dropout2d, gradcheck.
"""
from __future__ import annotations

import os
import shutil

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import FlagModeLayer, Implementation, Limit, NotProvided, Output, RunLayer
from dropnorm.adapters.layouts import storage_permutation
from dropnorm.spec.dtypes import round_to

if "DEV" not in os.environ and shutil.which("clang") is None:
    os.environ["DEV"] = "PYTHON"   # tinygrad's CPU device needs clang; the PYTHON device needs nothing
tinygrad = c.require("tinygrad", "tinygrad", "tinygrad")
from tinygrad import Context, Tensor, dtypes, nn  # noqa: E402
from tinygrad.nn import state as tg_state  # noqa: E402

TG = {"float64": dtypes.float64, "float32": dtypes.float32, "float16": dtypes.float16, "bfloat16": dtypes.bfloat16}
NAMES = {v: k for k, v in TG.items()}


def tensor(x: np.ndarray, dtype: str, layout: str = "contiguous") -> Tensor:
    """A tinygrad Tensor of `dtype` holding x's values, viewed in `layout`."""
    v = np.asarray(round_to(x, dtype), dtype=np.float64)
    if layout == "strided" and v.ndim:
        buf = np.zeros(v.shape[:-1] + (2 * v.shape[-1],))
        buf[..., ::2] = v
        t = Tensor(buf).cast(TG[dtype])[..., ::2]
    else:
        perm = storage_permutation(v.ndim, layout) if v.ndim else ()
        if perm and perm != tuple(range(v.ndim)):
            t = Tensor(np.ascontiguousarray(v.transpose(perm))).cast(TG[dtype]).permute(
                tuple(int(i) for i in np.argsort(perm)))
        else:
            t = Tensor(v).cast(TG[dtype])
    return t


def numpy(t) -> np.ndarray | None:
    if t is None:
        return None
    if t.dtype != dtypes.float64:
        t = t.cast(dtypes.float32)
    return np.asarray(t.numpy(), dtype=np.float64)


class TinygradDropout(c.StatelessDropout, RunLayer, FlagModeLayer):
    def __init__(self, impl, p, inplace):
        super().__init__(impl, "Dropout", dict(p=p, inplace=inplace))
        self.p = p

    def _run(self, x, dtype, layout, dy=None):
        t = tensor(x, dtype, layout)
        with Context(TRAINING=int(self._training)):
            y = t.dropout(self.p)
        dx = None
        if dy is not None:
            (dx,) = (y * tensor(dy, dtype)).sum().gradient(t)
            dx = numpy(dx)
        return Output(y=numpy(y), dtype=NAMES.get(y.dtype, str(y.dtype)), x_after=numpy(t),
                      shares_input_memory=y is t, dx=dx)



KEYS = ("weight", "bias", "running_mean", "running_var")


class TinygradBatchNorm(RunLayer, FlagModeLayer):
    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, f"BatchNorm{dims}d", kwargs)
        self.dims, self.config = dims, dict(config)
        self.module = nn.BatchNorm(kwargs["num_features"], **self.config)
        self.param_dtype = "float32"

    def _run(self, x, dtype, layout, dy=None):
        m = self.module
        t = tensor(x, dtype, layout)
        with Context(TRAINING=int(self._training)):
            y = m(t)
            grads = []
            if dy is not None:   # the gradient graph is built before anything is realised
                wrt = [t] + ([m.weight, m.bias] if m.weight is not None else [])
                grads = list((y * tensor(dy, dtype).cast(y.dtype)).sum().gradient(*wrt))
            Tensor.realize(y, *grads)
            out = Output(y=numpy(y), dtype=NAMES.get(y.dtype, str(y.dtype)), x_after=numpy(t),
                         shares_input_memory=False)
            if grads:
                out.dx = numpy(grads[0])
                if m.weight is not None:
                    out.dweight, out.dbias = numpy(grads[1]), numpy(grads[2])
        return out

    def state(self):
        m = self.module
        out = {k: numpy(getattr(m, k, None)) for k in KEYS}
        out.update(num_batches_tracked=int(m.num_batches_tracked.numpy()) if self.config.get(
            "track_running_stats", True) else None, param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        m = self.module
        for key, value in values.items():
            if key == "num_batches_tracked":
                m.num_batches_tracked = Tensor(np.asarray(value, dtype=np.int64).reshape(1)).reshape(()).cast(
                    m.num_batches_tracked.dtype)
                continue
            if key not in KEYS or getattr(m, key, None) is None:
                raise NotProvided(f"tinygrad BatchNorm has no {key} (affine=False has no weight/bias; "
                                  f"track_running_stats=False has no running statistics)")
            setattr(m, key, tensor(np.asarray(value, np.float64), self.param_dtype).contiguous().realize())

    def to(self, dtype):
        self.param_dtype = dtype
        for key in KEYS:
            t = getattr(self.module, key, None)
            if t is not None:
                setattr(self.module, key, t.cast(TG[dtype]).contiguous().realize())

    def roundtrip(self):
        fresh = TinygradBatchNorm(self.impl, self.dims, self.kwargs, self.config)
        fresh.to(self.param_dtype)
        # get_state_dict -> numpy -> load_state_dict (safe_save goes through the disk device, which
        # needs the CPU device's clang)
        saved = {k: (v.numpy(), v.dtype) for k, v in tg_state.get_state_dict(self.module).items()}
        # (a 0-d numpy array becomes a device-less constant: it goes in as shape (1,), reshaped)
        tg_state.load_state_dict(fresh.module, {k: Tensor(a.reshape(-1)).reshape(a.shape).cast(d)
                                                for k, (a, d) in saved.items()}, verbose=False)
        fresh._training = self._training
        return fresh


class TinygradImplementation(Implementation):
    name = "tinygrad"
    convention = "tinygrad"
    # DEV=PYTHON interprets every kernel in Python: statistics tests ran past 120 s limits
    cost_factor = 50.0 if os.environ.get("DEV") == "PYTHON" else 5.0

    def __init__(self):
        from importlib.metadata import version
        self.version = f"tinygrad {version('tinygrad')} (DEV={os.environ.get('DEV', 'default')})"
        self.target = "tinygrad Tensor.dropout / nn.BatchNorm"

    missing = {"Dropout2d": "tinygrad has no channel dropout (only Tensor.dropout, element-wise)"}
    limits = (c.no_inplace("tinygrad Tensor.dropout returns a new tensor: no in-place dropout"),
              Limit.on("momentum", lambda m: m is None, "tinygrad nn.BatchNorm has no cumulative average (momentum=None)"))

    def seed(self, seed):
        Tensor.manual_seed(int(seed))

    def rng_state(self):
        parts = [repr(Tensor._seed).encode()]
        for name in sorted(Tensor._device_rng_counters):
            parts.append(np.asarray(Tensor._device_rng_counters[name].numpy()).tobytes())
        return b"".join(parts)

    def dropout(self, p=0.5, inplace=False):
        self.refuse("Dropout", p=p, inplace=inplace)
        return TinygradDropout(self, p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        raise NotProvided(self.missing["Dropout2d"])

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_keywords(self, dims, num_features, eps, momentum, affine, track_running_stats)
        return TinygradBatchNorm(self, dims, kw, dict(eps=eps, momentum=momentum, affine=affine,
                                                      track_running_stats=track_running_stats))

    def batchnorm_defaults(self, dims, num_features):
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return TinygradBatchNorm(self, dims, kw, {})


def load(name: str = "tinygrad", device: str = "cpu") -> TinygradImplementation:
    """--impl tinygrad (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return TinygradImplementation()
