"""Adapter for candle-python's torch-compatible layers (--impl candle).

candle (pip install candle-python; import candle) describes itself as "A PyTorch-compatible deep
learning framework" that "runs your PyTorch code -- no rewrite needed": candle.nn.Dropout,
Dropout2d, BatchNorm1d/2d/3d take torch.nn's constructor keywords, and its CPU kernels are numpy.
It is therefore audited under the "torch" convention (momentum weighs the new batch, default 0.1,
unbiased running variance, eps 1e-5, num_batches_tracked, momentum=None the cumulative average):
a departure from torch's documented behaviour is a defect of candle, not a convention.

Mapping of the torch-style interface: one to one (candle.nn.<Kind>(**torch keywords)), with
  tensors            candle.tensor of the input's values in the dtype; "transposed" / "channels_last"
                     are permute views of a tensor stored in that order, "strided" a [..., ::2] view
  seed(s), RNG       candle.manual_seed(s); rng_state = candle.get_rng_state()
  state              weight, bias, running_mean, running_var, num_batches_tracked (a tensor)
  roundtrip          candle.save(state_dict) -> candle.load -> load_state_dict of a fresh layer
                     converted to the same dtype
  gradients          y.backward(dy); x.grad, weight.grad, bias.grad
Not provided: momentum=None (candle's F.batch_norm computes 1 - momentum: TypeError at the first
training call), track_running_stats=False and affine=False (the layer registers None buffers and
parameters, which leave no attribute, and forward reads self.running_mean / self.weight:
AttributeError at every call), Dropout2d(p=1) (ZeroDivisionError at every training call), all
accepted at construction and recorded in docs/findings/candle-batchnorm-departures-from-torch.md;
gradcheck.
The CPU device only. Importing candle installs nothing over torch: its startup hook
(_candle_torch_compat, from a .pth file) redirects `import torch` only where no real torch is
installed or USE_CANDLE=1.
"""
from __future__ import annotations

import io

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import Implementation, Limit, Layer, NotProvided, Output
from dropnorm.adapters.layouts import storage_permutation
from dropnorm.spec.dtypes import round_to

candle = c.require("candle", "candle", "candle")

DTYPES = {"float64": candle.float64, "float32": candle.float32, "float16": candle.float16,
          "bfloat16": candle.bfloat16}
NAMES = {str(v): k for k, v in DTYPES.items()}


def _from(v: np.ndarray, dtype: str):
    """A candle tensor of `dtype` with v's values: candle.from_numpy of the float64 array, then .to(dtype).
    (candle.tensor(ndarray) is not torch.tensor: it makes float64 data float32, and with
    dtype=candle.bfloat16 it casts the values to uint16 integers, 1.5 -> 1, -3.25 -> 65533.)"""
    return candle.from_numpy(np.array(v, dtype=np.float64)).to(DTYPES[dtype])


def tensor(x: np.ndarray, dtype: str, layout: str = "contiguous"):
    """A candle tensor of `dtype` holding x's values, viewed in `layout`."""
    v = np.array(round_to(x, dtype), dtype=np.float64)
    t = _from(v, dtype)
    perm = storage_permutation(t.ndim, layout) if v.ndim else ()
    if perm is None:
        if v.ndim == 0:
            return t
        buf = _from(np.zeros(v.shape[:-1] + (2 * v.shape[-1],)), dtype)
        buf[..., ::2] = t
        return buf[..., ::2]
    if perm and tuple(perm) != tuple(range(v.ndim)):
        inv = [list(perm).index(i) for i in range(v.ndim)]
        return t.permute(*perm).contiguous().permute(*inv)
    return t


def numpy(t) -> np.ndarray | None:
    """The tensor's logical values as float64. contiguous() first: candle's .to(dtype) of a
    non-contiguous view returns the values in storage order (a permuted float32 view converted to
    float64 comes back transposed), which would make the adapter misread correct outputs."""
    if t is None:
        return None
    return np.array(t.detach().contiguous().to(candle.float64).numpy(), dtype=np.float64)


def dtype_name(t) -> str:
    return NAMES.get(str(t.dtype), str(t.dtype))


def _is_tensor(v) -> bool:
    return isinstance(v, candle.Tensor)


class CandleLayer(Layer):
    def __init__(self, impl, kind, kwargs, reported=None):
        self.impl, self.kind, self.ctor = impl, kind, dict(kwargs)
        self.kwargs = dict(reported if reported is not None else kwargs)   # what the tests are told
        self.module = getattr(candle.nn, kind)(**self.ctor)

    def train(self, mode: bool = True) -> None:
        self.module.train(mode)

    @property
    def training(self) -> bool:
        return bool(self.module.training)

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        t = tensor(x, dtype, layout)
        with candle.no_grad():
            y = self.module(t)
        return Output(y=numpy(y), dtype=dtype_name(y), x_after=numpy(t), shares_input_memory=y is t,
                      extra={"same_object": y is t})

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        t = tensor(x, dtype, layout).detach().requires_grad_(True)
        for p in self.module.parameters():
            p.grad = None
        y = self.module(t)
        y.backward(tensor(dy, dtype).to(y.dtype))
        w, b = getattr(self.module, "weight", None), getattr(self.module, "bias", None)
        return Output(y=numpy(y), dtype=dtype_name(y), x_after=numpy(t), shares_input_memory=False,
                      dx=numpy(t.grad),
                      dweight=numpy(w.grad) if _is_tensor(w) else None,
                      dbias=numpy(b.grad) if _is_tensor(b) else None)

    def state(self):
        m = self.module
        out = {k: (numpy(getattr(m, k)) if _is_tensor(getattr(m, k, None)) else None)
               for k in ("weight", "bias", "running_mean", "running_var")}
        t = getattr(m, "num_batches_tracked", None)
        out["num_batches_tracked"] = int(np.asarray(t.numpy()).ravel()[0]) if _is_tensor(t) else None
        ref = next((getattr(m, k) for k in ("weight", "running_mean") if _is_tensor(getattr(m, k, None))), None)
        out["param_dtype"] = dtype_name(ref) if ref is not None else None
        return out

    def load(self, **values):
        with candle.no_grad():
            for key, value in values.items():
                target = getattr(self.module, key, None)
                if not _is_tensor(target):
                    raise NotProvided(f"{self.kind} has no tensor attribute {key!r}")
                v = np.broadcast_to(np.asarray(value, np.float64), tuple(target.shape))
                target.copy_(_from(v, NAMES.get(str(target.dtype), "float32")))

    def roundtrip(self):
        if not self.kind.startswith("BatchNorm"):
            raise NotProvided(f"{self.kind} has no state to round-trip")
        buf = io.BytesIO()
        candle.save(self.module.state_dict(), buf)
        buf.seek(0)
        fresh = CandleLayer(self.impl, self.kind, self.ctor, self.kwargs)
        floats = [v.dtype for v in self.module.state_dict().values() if v.is_floating_point()]
        if floats:
            fresh.module.to(floats[0])
        fresh.module.load_state_dict(candle.load(buf))
        fresh.module.train(self.module.training)
        return fresh

    def to(self, dtype):
        self.module.to(DTYPES[dtype])


class CandleImplementation(Implementation):
    name = "candle"
    convention = "torch"   # "A PyTorch-compatible deep learning framework": torch's documented behaviour
    cost_factor = 2.0
    limits = (Limit.on("p", lambda p: p == 1, "candle's Dropout2d(p=1) raises ZeroDivisionError at every training call "
                       "(1.0 / (1.0 - p)); docs/findings/candle-batchnorm-departures-from-torch.md", kinds=("Dropout2d",)),
              Limit.on("affine", lambda a: a is False, "candle.nn.BatchNorm(affine=False) constructs but every call raises "
                       "AttributeError (no weight attribute; docs/findings/candle-batchnorm-departures-from-torch.md)"),
              Limit.on("track_running_stats", lambda t: t is False, "candle.nn.BatchNorm(track_running_stats=False) "
                       "constructs but every call raises AttributeError (no running_mean attribute; "
                       "docs/findings/candle-batchnorm-departures-from-torch.md)"),
              Limit.on("momentum", lambda m: m is None, "candle's F.batch_norm computes (1 - momentum): momentum=None "
                       "raises TypeError at the first training call (docs/findings/candle-batchnorm-departures-from-torch.md)"))

    def __init__(self):
        from importlib.metadata import version
        self.version = f"candle-python {version('candle-python')}"
        self.target = "candle.nn Dropout / Dropout2d / BatchNorm1d/2d/3d (numpy CPU backend)"

    def seed(self, seed):
        candle.manual_seed(int(seed))

    def rng_state(self):
        return np.asarray(candle.get_rng_state().numpy()).tobytes()

    def dropout(self, p=0.5, inplace=False):
        return CandleLayer(self, "Dropout", dict(p=p, inplace=inplace))

    def dropout2d(self, p=0.5, inplace=False):
        self.refuse("Dropout2d", p=p, inplace=inplace)
        return CandleLayer(self, "Dropout2d", dict(p=p, inplace=inplace))

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_keywords(self, dims, num_features, eps, momentum, affine, track_running_stats)
        return CandleLayer(self, f"BatchNorm{dims}d", kw)

    def batchnorm_defaults(self, dims, num_features):
        return CandleLayer(self, f"BatchNorm{dims}d", dict(num_features=num_features),
                           dict(num_features=num_features, eps=None, momentum=None, affine=True,
                                track_running_stats=True))


def load(name: str = "candle", device: str = "cpu") -> CandleImplementation:
    """--impl candle (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return CandleImplementation()
