"""Adapter that runs the float64 numpy reference as an implementation (--impl reference).

It behaves like torch.nn where the spec leaves a choice: parameters and
running statistics are stored in float32 (param_dtype), results are computed in
float64 and rounded to the input dtype, masks come from a numpy Generator that
seed() resets. Backward passes are the reference's analytic formulas.
"""
from __future__ import annotations

import copy

import numpy as np

from dropnorm import reference as ref
from dropnorm.reference import batchnorm as refbn
from dropnorm.adapters.base import BATCHNORM_RANKS, FlagModeLayer, Implementation, Layer, NotProvided, Output
from dropnorm.adapters.layouts import numpy_view
from dropnorm.spec.dtypes import DTYPES, round_to
from dropnorm.spec.kinds import CHANNEL_RANKS, KINDS
from dropnorm.reference import _validate as v
from dropnorm.reference.dropout import alpha_dropout_backward, alpha_dropout_forward, sample_channel_mask_nobatch


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise TypeError(f"dtype must be one of {DTYPES}, got {dtype!r}")


class _RefLayer(FlagModeLayer):
    def roundtrip(self) -> "Layer":
        return copy.deepcopy(self)

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        return self._run(x, dtype, layout)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        return self._run(x, dtype, layout, dy=round_to(dy, dtype))


class RefDropout(_RefLayer):
    """Dropout (channelwise=False) or a channel dropout, Dropout1d/2d/3d (channelwise=True): one draw per
    (n, c) of the batched rank, per c of the no-batch rank (dropnorm.spec.kinds.CHANNEL_RANKS, D2-RANK-01)."""

    def __init__(self, impl, kind, kwargs, channelwise: bool):
        super().__init__(impl, kind, kwargs)
        self.p = v.probability("p", kwargs["p"])
        self.inplace = bool(kwargs.get("inplace", False))
        self.channelwise = channelwise

    def _batched(self, shape) -> bool:
        """Whether a channel-dropout input is batched (N, C, ...) or the no-batch (C, ...) form."""
        ranks = CHANNEL_RANKS[self.kind]
        if self.kind == "Dropout2d":  # (N, C, ...) at every rank >= 2, as torch reads it (D2-RANK-01)
            if len(shape) < 2:
                raise ValueError(f"Dropout2d needs (N, C, ...) input, got shape {shape}")
            return True
        if len(shape) not in (ranks["batched"], ranks["unbatched"]):
            raise ValueError(f"{self.kind} takes input of rank {ranks['batched']} (N, C, ...) or "
                             f"{ranks['unbatched']} (C, ...), got shape {shape}")
        return len(shape) == ranks["batched"]

    def _mask(self, shape):
        batched = self._batched(shape) if self.channelwise else True
        if not self._training or self.p == 0.0 or self.p == 1.0 or 0 in shape:
            return np.ones(shape) if self.p < 1.0 else np.zeros(shape)  # no draw: RNG untouched
        if not self.channelwise:
            return ref.sample_mask(self.impl.rng, shape, self.p)
        sample = ref.sample_channel_mask if batched else sample_channel_mask_nobatch
        return sample(self.impl.rng, shape, self.p)

    def _run(self, x, dtype, layout, dy=None):
        _check_dtype(dtype)
        xin = numpy_view(round_to(x, dtype), layout)
        mask = self._mask(x.shape)
        y = round_to(ref.dropout_forward(xin, mask, self.p, self._training), dtype)
        dx = None if dy is None else round_to(ref.dropout_backward(dy, mask, self.p, self._training), dtype)
        if self.inplace:
            xin[...] = y
        return Output(y=y, dtype=dtype, x_after=np.array(xin), shares_input_memory=self.inplace, dx=dx)

    def state(self):
        return {"weight": None, "bias": None, "running_mean": None, "running_var": None,
                "num_batches_tracked": None, "param_dtype": None}

    def load(self, **values):
        raise NotProvided(f"{self.kind} has no parameters or buffers")


class RefAlphaDropout(RefDropout):
    """AlphaDropout (channelwise=False) or FeatureAlphaDropout (channelwise=True: one draw per (n, c)
    of (N, C, ...) input, and per c of the documented no-batch (C, D, H, W), AD-TRAIN-01 no-batch-channel;
    torch 2.13.0 reads the 4-D input as batched, a recorded known defect): dropnorm/reference/dropout.py alpha_dropout_*."""

    def _mask(self, shape):
        if self.channelwise and len(shape) < 2:
            raise ValueError(f"FeatureAlphaDropout needs (N, C, ...) input, got shape {shape}")
        if not self._training or self.p == 0.0 or self.p == 1.0 or 0 in shape:
            return np.ones(shape) if self.p < 1.0 else np.zeros(shape)  # no draw: RNG untouched
        if self.channelwise and len(shape) == 4:  # the documented no-batch (C, D, H, W): one draw per channel
            return sample_channel_mask_nobatch(self.impl.rng, shape, self.p)
        sample = ref.sample_channel_mask if self.channelwise else ref.sample_mask
        return sample(self.impl.rng, shape, self.p)

    def _run(self, x, dtype, layout, dy=None):
        _check_dtype(dtype)
        xin = numpy_view(round_to(x, dtype), layout)
        mask = self._mask(x.shape)
        y = round_to(alpha_dropout_forward(xin, mask, self.p, self._training), dtype)
        dx = None if dy is None else round_to(alpha_dropout_backward(dy, mask, self.p, self._training), dtype)
        if self.inplace:
            xin[...] = y
        return Output(y=y, dtype=dtype, x_after=np.array(xin), shares_input_memory=self.inplace, dx=dx)


class RefBatchNorm(_RefLayer):
    def __init__(self, impl, kind, kwargs, dims: int, param_dtype: str = "float32"):
        super().__init__(impl, kind, kwargs)
        c = kwargs["num_features"]
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(f"num_features must be a positive int, got {c!r}")
        self.dims, self.num_features = dims, c
        self.eps = v.positive("eps", kwargs["eps"])
        self.momentum = v.momentum(kwargs["momentum"])
        self.affine = bool(kwargs["affine"])
        self.track = bool(kwargs["track_running_stats"])
        self.param_dtype = param_dtype
        self.weight = np.ones(c) if self.affine else None
        self.bias = np.zeros(c) if self.affine else None
        self.running_mean = np.zeros(c) if self.track else None
        self.running_var = np.ones(c) if self.track else None
        self.num_batches_tracked = 0 if self.track else None

    def _check_input(self, x):
        if x.ndim not in BATCHNORM_RANKS[self.dims]:
            raise ValueError(f"{self.kind} expects input rank in {BATCHNORM_RANKS[self.dims]}, got shape {x.shape}")
        v.channel_input(x, self.num_features)

    def _uses_batch_stats(self) -> bool:
        return self._training or not self.track

    def _run(self, x, dtype, layout, dy=None):
        _check_dtype(dtype)
        self._check_input(x)
        xin = numpy_view(round_to(x, dtype), layout)
        n = x.size // x.shape[1]
        out = Output(y=None, dtype=dtype, x_after=None, shares_input_memory=False)
        if self._uses_batch_stats():
            if n == 0:
                y = np.array(xin)
            else:
                y = ref.batchnorm_train_forward(xin, self.weight, self.bias, self.eps)
                if dy is not None:
                    out.dx, out.dweight, out.dbias = ref.batchnorm_train_backward(xin, dy, self.weight, self.eps)
            if self._training and self.track:
                self._update(xin, n)
        else:
            y = ref.batchnorm_eval_forward(xin, self.running_mean, self.running_var, self.weight, self.bias,
                                           self.eps)
            if dy is not None:
                out.dx, out.dweight, out.dbias = ref.batchnorm_eval_backward(
                    xin, dy, self.running_mean, self.running_var, self.weight, self.eps)
        out.y = round_to(y, dtype)
        out.x_after = np.array(xin)
        if out.dx is not None:
            out.dx = round_to(out.dx, dtype)
            if not self.affine:
                out.dweight = out.dbias = None
            else:
                out.dweight = round_to(out.dweight, self.param_dtype)
                out.dbias = round_to(out.dbias, self.param_dtype)
        return out

    def _update(self, xin, n):
        if n == 0:  # empty batch: count it (as torch does), write no NaN (BN-TRAIN-07)
            self.num_batches_tracked += 1
            return
        rm, rv, t = ref.running_update(self.running_mean, self.running_var, self.num_batches_tracked, xin,
                                       self.momentum)
        self.running_mean = round_to(rm, self.param_dtype)
        self.running_var = round_to(rv, self.param_dtype)
        self.num_batches_tracked = t

    def state(self):
        copy_ = (lambda a: None if a is None else np.array(a))
        return {"weight": copy_(self.weight), "bias": copy_(self.bias),
                "running_mean": copy_(self.running_mean), "running_var": copy_(self.running_var),
                "num_batches_tracked": self.num_batches_tracked, "param_dtype": self.param_dtype}

    def load(self, **values):
        for key, value in values.items():
            if getattr(self, key, None) is None:
                raise NotProvided(f"{self.kind} has no attribute {key!r}")
            if key == "num_batches_tracked":
                self.num_batches_tracked = int(value)
            else:
                setattr(self, key, round_to(v.per_channel(key, value, self.num_features), self.param_dtype))

    def to(self, dtype):
        _check_dtype(dtype)
        self.param_dtype = dtype
        for key in ("weight", "bias", "running_mean", "running_var"):
            if getattr(self, key) is not None:
                setattr(self, key, round_to(getattr(self, key), dtype))

    # the rest of the family (issue 15): reset and checkpoint loading as torch does them
    def reset_running_stats(self):
        fresh = refbn.initial_state(self.num_features, affine=self.affine, track_running_stats=self.track)
        if self.track:
            self.running_mean = round_to(fresh["running_mean"], self.param_dtype)
            self.running_var = round_to(fresh["running_var"], self.param_dtype)
            self.num_batches_tracked = fresh["num_batches_tracked"]

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            fresh = refbn.initial_state(self.num_features, affine=True, track_running_stats=self.track)
            self.weight = round_to(fresh["weight"], self.param_dtype)
            self.bias = round_to(fresh["bias"], self.param_dtype)

    def load_state(self, values, *, legacy=False):
        """A strict load: every key the layer has, no other (a legacy state may lack the counter)."""
        have = {k for k in refbn.STATE_KEYS if getattr(self, k, None) is not None}
        missing = sorted(have - set(values) - ({"num_batches_tracked"} if legacy else set()))
        unexpected = sorted(set(values) - have)
        if missing or unexpected:
            raise RuntimeError(f"error(s) loading the state of {self.kind}: missing keys {missing}, "
                               f"unexpected keys {unexpected}")
        t = refbn.counter_after_load(self.num_batches_tracked, values, legacy=legacy) if self.track else None
        self.load(**{k: v for k, v in values.items() if k != "num_batches_tracked"})
        if self.track:
            self.num_batches_tracked = t


    def load_checkpoint(self, values, *, form):
        """As torch: a plain dict loads strictly as the current format when it has the counter, and keeps
        the layer's own counter without it (torch's version-None migration); "partial" (non-strict) keeps
        the layer's own counter and loads the rest."""
        if form not in ("plain", "partial"):
            raise ValueError(f"form must be 'plain' or 'partial', got {form!r}")
        self.load_state(values, legacy="num_batches_tracked" not in values)

    def copy_layer(self, how):
        import pickle
        if how not in ("deepcopy", "pickle"):
            raise ValueError(f"how must be 'deepcopy' or 'pickle', got {how!r}")
        return copy.deepcopy(self) if how == "deepcopy" else pickle.loads(pickle.dumps(self))

    def dtypes(self):
        out = {k: self.param_dtype for k in ("weight", "bias", "running_mean", "running_var")
               if getattr(self, k) is not None}
        if self.num_batches_tracked is not None:
            out["num_batches_tracked"] = "int64"
        return out


class RefLazyBatchNorm(RefBatchNorm):
    """LazyBatchNorm{dims}d: num_features (and the parameters and buffers) from the first input."""

    def __init__(self, impl, kind, kwargs, dims: int):
        super().__init__(impl, kind, dict(kwargs, num_features=1), dims)
        self.kwargs = dict(kwargs)
        self.num_features = None
        self.weight = self.bias = self.running_mean = self.running_var = None

    def _run(self, x, dtype, layout, dy=None):
        if self.num_features is None:
            if x.ndim not in BATCHNORM_RANKS[self.dims] or x.shape[1] < 1:
                raise ValueError(f"{self.kind} expects input rank in {BATCHNORM_RANKS[self.dims]} with at least "
                                 f"one channel, got shape {x.shape}")
            c = int(x.shape[1])
            fresh = refbn.initial_state(c, affine=self.affine, track_running_stats=self.track)
            self.num_features = c
            for key in ("weight", "bias", "running_mean", "running_var"):
                if fresh[key] is not None:
                    setattr(self, key, round_to(fresh[key], self.param_dtype))
        return super()._run(x, dtype, layout, dy)


class ReferenceImplementation(Implementation):
    name = "reference"
    target = "reference (dropnorm float64 numpy)"

    def __init__(self):
        from dropnorm import __version__
        self.version = __version__
        self.rng = np.random.default_rng(0)

    def provides(self, kind: str) -> bool:
        return kind in KINDS

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def rng_state(self) -> bytes:
        return repr(self.rng.bit_generator.state).encode()

    def dropout(self, p=0.5, inplace=False):
        return RefDropout(self, "Dropout", dict(p=p, inplace=inplace), channelwise=False)

    def dropout2d(self, p=0.5, inplace=False):
        return RefDropout(self, "Dropout2d", dict(p=p, inplace=inplace), channelwise=True)

    def dropout1d(self, p=0.5, inplace=False):
        return RefDropout(self, "Dropout1d", dict(p=p, inplace=inplace), channelwise=True)

    def dropout3d(self, p=0.5, inplace=False):
        return RefDropout(self, "Dropout3d", dict(p=p, inplace=inplace), channelwise=True)

    def alpha_dropout(self, p=0.5, inplace=False):
        return RefAlphaDropout(self, "AlphaDropout", dict(p=p, inplace=inplace), channelwise=False)

    def feature_alpha_dropout(self, p=0.5, inplace=False):
        return RefAlphaDropout(self, "FeatureAlphaDropout", dict(p=p, inplace=inplace), channelwise=True)

    def batchnorm_defaults(self, dims, num_features):
        """The reference follows the torch convention: momentum 0.1 (new-batch weight), eps 1e-5."""
        return self.batchnorm(dims, num_features)

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = dict(num_features=num_features, eps=eps, momentum=momentum, affine=affine,
                  track_running_stats=track_running_stats)
        if dims not in (1, 2, 3):
            raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
        return RefBatchNorm(self, f"BatchNorm{dims}d", kw, dims)

    def lazy_batchnorm(self, dims, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        if dims not in (1, 2, 3):
            raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
        kw = dict(eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats)
        return RefLazyBatchNorm(self, f"BatchNorm{dims}d", kw, dims)

    # folding an eval BatchNorm into the preceding layer (BN-FOLD-01): dropnorm/reference/folding.py in float64,
    # the folded parameters and the output rounded to the dtype (one rounding each)
    def fold_methods(self):
        return ("reference",)

    def fold_conv_bn(self, kind, weight, bias, bn, x, *, method, dtype="float32"):
        from dropnorm.reference import folding

        if method != "reference":
            raise NotProvided(f"reference: no folding method {method!r}")
        w, b = folding.fold_params(kind, weight, bias, bn["running_mean"], bn["running_var"], bn["eps"],
                                   bn.get("weight"), bn.get("bias"))
        w, b = round_to(w, dtype), round_to(b, dtype)
        y = round_to(folding.layer_forward(kind, x, w, b), dtype)
        return Output(y=y, dtype=dtype, x_after=np.array(x, np.float64), shares_input_memory=False,
                      extra={"weight": w, "bias": b, "batchnorm_left": []})


def load(name: str = "reference", device: str = "cpu") -> ReferenceImplementation:
    """--impl reference (numpy on the CPU: `device` is not used)."""
    return ReferenceImplementation()
