"""The adapter interface: how tests talk to an implementation under test.

Tests never import torch.nn or the reference directly: they ask an
`Implementation` for layers and exchange float64 numpy arrays whose values are
exactly representable in the dtype under test (dropnorm/spec/dtypes.py). An
adapter for another framework implements these two classes and nothing else.

The interface is small on purpose:
  Implementation.provides / expresses / seed / rng_state / dropout / dropout2d / batchnorm
                 (and, where the framework has them: dropout1d / dropout3d / alpha_dropout /
                 feature_alpha_dropout, NotProvided by default)
  Layer.train / forward / forward_backward / state / load / roundtrip / to / gradcheck
  (and, where the framework has them, the rest of the module API: reset, checkpoint loading, copies,
  no-gradient contexts, and issue 24's state_keys / output_format / set_tracking / inplace_autograd /
  forward_backward_deterministic / vmap_forward / replace_batch_norm / functional_forward, NotProvided by
  default)
Anything an implementation does not offer raises NotProvided, which the tests
report as "not provided" (a skip), never as a pass.

Constructor arguments are torch's (p, eps, momentum as the weight of the new
batch or None, affine, track_running_stats); an adapter maps them to its
framework's parameters through its documented convention
(Implementation.convention, spec/conventions.toml) and raises NotProvided for
what cannot be expressed. `expresses()` tells the tests in advance, so that a
hypothesis test draws only what the implementation can express and the rest
is reported by dropnorm/properties/test_provided.py.

Capabilities are declared once: a kind the implementation lacks is an entry of
`Implementation.missing` (kind -> why), an option it cannot express a `Limit`
in `Implementation.limits`; provides() and expresses() answer from them, and
the adapter calls `refuse(kind, **options)` where it builds a layer or runs a
call, which raises NotProvided with the declared reason. An adapter whose
capabilities cannot be listed (torch-module: a user's classes, probed) overrides
provides()/expresses() instead. dropnorm/adapters/interface.py checks an adapter
against its declarations.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dropnorm.errors import NotProvided
from dropnorm.spec.kinds import CORE_KINDS, FACTORY, KINDS

LAYOUTS = ("contiguous", "transposed", "strided", "channels_last")
BATCHNORM_RANKS = {1: (2, 3), 2: (4,), 3: (5,)}  # BatchNormNd -> allowed x.ndim


@dataclass
class Output:
    """What one forward (and optionally backward) call produced, as float64 values."""

    y: np.ndarray
    dtype: str
    x_after: np.ndarray          # the input's values after the call (mutation checks)
    shares_input_memory: bool    # the output aliases the input's storage
    dx: np.ndarray | None = None
    dweight: np.ndarray | None = None
    dbias: np.ndarray | None = None
    extra: dict = field(default_factory=dict)



@dataclass(frozen=True)
class Limit:
    """One set of options an implementation cannot express, and why: declared once in
    Implementation.limits, read by expresses() (False where it applies) and by refuse() (raises
    NotProvided(reason)).

    It applies to a layer kind starting with one of `kinds` (all kinds when empty), when every option
    in `needs` was given and `when(options)` is true. `reason` is formatted with the options and `kind`."""

    needs: tuple[str, ...]
    when: Callable[[dict], bool]
    reason: str
    kinds: tuple[str, ...] = ()

    @classmethod
    def on(cls, option: str, excludes: Callable, reason: str, kinds: tuple[str, ...] = ()) -> "Limit":
        """A limit on one option: it applies where excludes(value of the option) is true."""
        return cls((option,), lambda o: bool(excludes(o[option])), reason, kinds)

    def applies(self, kind: str, options: dict) -> bool:
        if self.kinds and not kind.startswith(self.kinds):
            return False
        return all(n in options for n in self.needs) and self.when(options)

    def message(self, kind: str, options: dict) -> str:
        return self.reason.format_map(_Fields(kind=kind, **options))


class _Fields(dict):
    """Format fields of a Limit's reason; one the options do not give stays as written ({name})."""

    def __missing__(self, key):
        return "{" + key + "}"


class Layer(abc.ABC):
    """One constructed layer (Dropout, Dropout2d or BatchNorm{1,2,3}d)."""

    kind: str
    kwargs: dict

    @abc.abstractmethod
    def train(self, mode: bool = True) -> None: ...

    @property
    @abc.abstractmethod
    def training(self) -> bool: ...

    @abc.abstractmethod
    def forward(self, x: np.ndarray, *, dtype: str = "float32", layout: str = "contiguous") -> Output:
        """Run the layer on `x` converted to `dtype` and stored in `layout`."""

    @abc.abstractmethod
    def forward_backward(self, x: np.ndarray, dy: np.ndarray, *, dtype: str = "float32",
                         layout: str = "contiguous") -> Output:
        """Forward, then backward with output gradient `dy`; fills dx, dweight, dbias."""

    @abc.abstractmethod
    def state(self) -> dict:
        """weight, bias, running_mean, running_var (float64 arrays or None),
        num_batches_tracked (int or None), and param_dtype (str)."""

    @abc.abstractmethod
    def load(self, **values) -> None:
        """Overwrite weight, bias, running_mean, running_var, num_batches_tracked."""

    @abc.abstractmethod
    def roundtrip(self) -> "Layer":
        """A fresh layer with the same constructor arguments, loaded from this one's saved state."""

    def to(self, dtype: str) -> None:
        """Convert parameters and buffers to `dtype` (BN-DTYPE-02)."""
        raise NotProvided(f"{self.kind}: converting parameters to {dtype}")

    def gradcheck(self, x: np.ndarray, *, second_order: bool) -> bool:
        """torch.autograd.gradcheck / gradgradcheck in float64 (BN-GRAD-04)."""
        raise NotProvided(f"{self.kind}: gradcheck needs an autograd implementation")

    # the rest of the BatchNorm family (issue 15): NotProvided unless an adapter overrides them
    def reset_running_stats(self) -> None:
        """The framework's own reset of the running statistics (torch: reset_running_stats()) (BN-RESET-01)."""
        raise NotProvided(f"{self.kind}: resetting the running statistics")

    def reset_parameters(self) -> None:
        """The framework's own reset of parameters and running statistics (torch: reset_parameters())
        (BN-RESET-01)."""
        raise NotProvided(f"{self.kind}: resetting the parameters")

    def load_state(self, values: dict, *, legacy: bool = False) -> None:
        """Load `values` (any of weight, bias, running_mean, running_var, num_batches_tracked; float64
        arrays, an int counter) through the framework's own strict checkpoint loading (torch:
        load_state_dict of a state dict in the layer's dtypes). legacy=True: in the framework's format
        from before the counter existed (torch: state-dict version 1); legacy=False: in its current
        format (BN-LOAD-01)."""
        raise NotProvided(f"{self.kind}: loading a saved state through the framework's own loader")

    def load_checkpoint(self, values: dict, *, form: str) -> None:
        """Load `values` in a form users produce besides the framework's own saved state (BN-LOAD-01,
        dropnorm/properties/test_batchnorm_sequences.py): form="plain", every key in a plain dict without
        the framework's metadata, loaded strictly (torch: a dict comprehension over state_dict(), which
        drops `_metadata`); form="partial", the current format without num_batches_tracked, loaded
        non-strictly (torch: load_state_dict(sd, strict=False))."""
        raise NotProvided(f"{self.kind}: loading a checkpoint of the form {form!r}")

    def copy_layer(self, how: str) -> "Layer":
        """A copy of this layer made by the language's own means, as a new layer (BN-STATE-01): how="deepcopy"
        (copy.deepcopy) or "pickle" (a pickle.dumps/loads round trip)."""
        raise NotProvided(f"{self.kind}: copying a layer by {how}")

    def dtypes(self) -> dict:
        """The dtype name of each parameter and buffer the layer holds, by name (weight, bias, running_mean,
        running_var, num_batches_tracked; torch: "int64" for the counter) (BN-TRAIN-05, BN-DTYPE-01/02)."""
        raise NotProvided(f"{self.kind}: the dtypes of its parameters and buffers")

    def convert_sync(self) -> "Layer":
        """The framework's conversion of this BatchNorm to its synchronized variant (torch:
        SyncBatchNorm.convert_sync_batchnorm), as a new layer (BN-SYNC-01)."""
        raise NotProvided(f"{self.kind}: conversion to a synchronized BatchNorm")

    def forward_in(self, x: np.ndarray, *, context: str, dtype: str = "float32") -> Output:
        """Forward of an input that requires gradients inside one of the framework's no-gradient
        contexts (torch: "no_grad" = torch.no_grad(), "inference_mode" = torch.inference_mode()), then
        the output used in a computation recorded by autograd outside it. Output.extra: requires_grad
        (the output is attached to a graph), inference (it is an inference tensor), autograd_error
        ("Type: message" raised by that use, or None), input_grad (the input received a gradient)
        (BN-GRAD-05)."""
        raise NotProvided(f"{self.kind}: forward under a no-gradient context ({context})")

    # issue 24: the module API that torch.nn users rely on beyond values (spec/clauses.toml BN-KEYS-01,
    # DO-FORMAT-01, D2-FORMAT-01, BN-FORMAT-01, BN-TOGGLE-01, DO-INPLACE-03, BN-DETERMINISTIC-01)
    def state_keys(self) -> tuple:
        """The keys of the layer's own saved state (torch: state_dict().keys()), in its order (BN-KEYS-01)."""
        raise NotProvided(f"{self.kind}: the keys of its saved state")

    def output_format(self, x: np.ndarray, *, dtype: str = "float32", layout: str = "contiguous") -> Output:
        """A forward (as forward()) that also reports the output's memory format in Output.extra["format"]:
        "channels_last" (torch.channels_last / channels_last_3d), "contiguous", or "other" (DO-FORMAT-01,
        D2-FORMAT-01, BN-FORMAT-01)."""
        raise NotProvided(f"{self.kind}: the memory format of its output")

    def set_tracking(self, mode: bool) -> None:
        """Switch the tracking of running statistics on or off after construction (torch: assigning
        module.track_running_stats), keeping the buffers the layer holds (BN-TOGGLE-01)."""
        raise NotProvided(f"{self.kind}: switching track_running_stats after construction")

    def inplace_autograd(self, x: np.ndarray, *, how: str, dtype: str = "float32") -> Output:
        """A training forward of this inplace=True layer on an input x that requires gradients, then a
        backward of the output's sum (DO-INPLACE-03): how="leaf", the layer applied to x itself (a leaf);
        "exp" and "tanh", to exp(x) and tanh(x) (whose backward needs their output); "scaled", to 2 x (whose backward does not).
        Output.y the output, dx the gradient of x (None where a call raised); extra: forward_error and
        backward_error, "Type: message" or None."""
        raise NotProvided(f"{self.kind}: an in-place forward under autograd")

    def forward_backward_deterministic(self, x: np.ndarray, dy: np.ndarray, *, dtype: str = "float32") -> Output:
        """forward_backward() with the framework's deterministic-algorithms mode switched on for the call
        (torch.use_deterministic_algorithms(True)) and restored afterwards (BN-DETERMINISTIC-01)."""
        raise NotProvided(f"{self.kind}: a deterministic-algorithms mode")

    # issue 24: function transforms (torch.func) (BN-VMAP-01, DO-VMAP-01, BN-FUNCCALL-01)
    def vmap_forward(self, x: np.ndarray, *, randomness: str = "error", dtype: str = "float32") -> Output:
        """The layer mapped over x's leading axis by the framework's vectorising transform (torch.func.vmap with
        `randomness` "error", "different" or "same"), each x[i] one input of the layer. Output.y the stacked
        outputs; extra["forward_error"]: "Type: message" where the call raised (y is then NaN)."""
        raise NotProvided(f"{self.kind}: a vectorising map (vmap)")

    def replace_batch_norm(self) -> None:
        """The framework's patch that makes BatchNorm usable under vmap in training (torch.func.
        replace_all_batch_norm_modules_), applied to this layer in place (BN-VMAP-01)."""
        raise NotProvided(f"{self.kind}: replace_all_batch_norm_modules_")

    def functional_forward(self, x: np.ndarray, *, dtype: str = "float32") -> Output:
        """A forward through the framework's stateless call (torch.func.functional_call) with the layer's own
        parameters and copies of its buffers passed in. Output.extra["buffers"]: the passed-in buffers after
        the call (running_mean, running_var as float64 arrays, num_batches_tracked as an int; those the layer
        has) (BN-FUNCCALL-01)."""
        raise NotProvided(f"{self.kind}: a stateless functional call")


class RunLayer(Layer):
    """A Layer whose forward and forward_backward are one call, `_run(x, dtype, layout, dy)` (dy None: the
    forward only), for frameworks where both go through the same code."""

    @abc.abstractmethod
    def _run(self, x: np.ndarray, dtype: str, layout: str, dy: np.ndarray | None = None) -> Output: ...

    def forward(self, x, *, dtype="float32", layout="contiguous") -> Output:
        return self._run(x, dtype, layout)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous") -> Output:
        return self._run(x, dtype, layout, dy)


class FlagModeLayer(Layer):
    """A Layer whose train/eval mode is a flag the adapter keeps and passes to each call (frameworks
    with a `training` argument per call: the reference, Keras, Flax, ONNX Runtime)."""

    def __init__(self, impl, kind: str, kwargs: dict):
        self.impl, self.kind, self.kwargs = impl, kind, dict(kwargs)
        self._training = True

    def train(self, mode: bool = True) -> None:
        self._training = bool(mode)

    @property
    def training(self) -> bool:
        return self._training


class Implementation(abc.ABC):
    """An implementation under test: a factory of layers plus its RNG."""

    name: str
    version: str
    target: str
    convention: str = "torch"   # a name in spec/conventions.toml: what the framework documents
    cost_factor: float = 1.0    # how much slower than eager torch a test runs (the audit's time limits)
    # True where each new constructor value (p, eps, momentum) costs a compile (torch.compile guards them
    # as constants): the tests then draw those values from each strategy's grid (strategies.grid_or),
    # so the paths compile once per layer configuration and reuse it across examples
    parameter_grid: bool = False
    # False where a shrinking step costs what a new example costs (a compile): a failing test then
    # reports its first failing example unshrunk (strategies.given), as the quick profile does.
    # Measured on torch-compile: shrinking one failing BatchNorm gradient example took hypothesis's
    # 5-minute shrink budget per layer kind and per failed condition (a rerun of judging.run shrinks again)
    shrinks_failures: bool = True
    # the capabilities it lacks, each declared once (module docstring): a layer kind -> why it is missing,
    # and the options it cannot express
    missing: dict = {}
    limits: tuple = ()

    def provides(self, kind: str) -> bool:
        """Whether this implementation has the layer kind at all (one of KINDS). A kind it lacks makes
        that kind's clauses not-provided; every other kind is still audited. By default: the five core
        kinds but those in `missing`, and each other kind whose factory method (kinds.FACTORY) the
        adapter overrides."""
        if kind in self.missing:
            return False
        if kind in CORE_KINDS:
            return True
        return kind in KINDS and getattr(type(self), FACTORY[kind]) is not getattr(Implementation, FACTORY[kind])

    def expresses(self, kind: str, **options) -> bool:
        """Whether this implementation can express a layer kind ("Dropout", "Dropout2d",
        "BatchNorm1d", ...) with these options; any of: the constructor keywords (p,
        inplace, eps, momentum, affine, track_running_stats), dtype (of the input) and
        param_dtype (of parameters and buffers), training (the mode a forward runs in: a path may run a
        layer in eval mode only), ndim (of the input). False means the layer or call raises NotProvided.
        By default: the kind is provided and no declared Limit applies."""
        return self.provides(kind) and self.limit(kind, **options) is None

    def limit(self, kind: str, **options) -> Limit | None:
        """The first declared Limit that applies to `kind` with `options`, or None."""
        return next((lim for lim in self.limits if lim.applies(kind, options)), None)

    def refuse(self, kind: str, **options) -> None:
        """Raise NotProvided with the declared reason where `kind` is missing or a Limit applies to these
        options; the adapters call it where they build a layer (constructor keywords) or run a call
        (dtype, param_dtype, ndim, training), so that what expresses() says and what raises are one."""
        if kind in self.missing:
            raise NotProvided(self.missing[kind])
        lim = self.limit(kind, **options)
        if lim is not None:
            raise NotProvided(lim.message(kind, options))

    def batchnorm_defaults(self, dims: int, num_features: int) -> Layer:
        """BatchNorm{dims}d constructed with the framework's own default momentum and eps (BN-DEFAULT-01)."""
        raise NotProvided(f"{self.name}: constructing BatchNorm with the framework's defaults")

    @abc.abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the generator that masks are drawn from."""

    @abc.abstractmethod
    def rng_state(self) -> bytes:
        """A snapshot of the global generator state, to check it is left untouched."""

    @abc.abstractmethod
    def dropout(self, p: float = 0.5, inplace: bool = False) -> Layer: ...

    @abc.abstractmethod
    def dropout2d(self, p: float = 0.5, inplace: bool = False) -> Layer: ...

    # the rest of the family (issue 15): not provided unless an adapter overrides them
    def dropout1d(self, p: float = 0.5, inplace: bool = False) -> Layer:
        """Dropout1d: one draw per (n, c) of (N, C, L), per c of (C, L) (D2-*)."""
        raise NotProvided(f"{self.name} has no Dropout1d")

    def dropout3d(self, p: float = 0.5, inplace: bool = False) -> Layer:
        """Dropout3d: one draw per (n, c) of (N, C, D, H, W), per c of (C, D, H, W) (D2-*)."""
        raise NotProvided(f"{self.name} has no Dropout3d")

    def alpha_dropout(self, p: float = 0.5, inplace: bool = False) -> Layer:
        """AlphaDropout: dropped units set to SELU's negative saturation, then an affine map (AD-*)."""
        raise NotProvided(f"{self.name} has no AlphaDropout")

    def feature_alpha_dropout(self, p: float = 0.5, inplace: bool = False) -> Layer:
        """FeatureAlphaDropout: AlphaDropout with one draw per (n, c) channel (AD-*)."""
        raise NotProvided(f"{self.name} has no FeatureAlphaDropout")

    @abc.abstractmethod
    def batchnorm(self, dims: int, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                  affine: bool = True, track_running_stats: bool = True) -> Layer: ...

    # the rest of the BatchNorm family (issue 15): NotProvided unless an adapter overrides them. The layers
    # they return are of the BatchNorm{dims}d kind (their clauses are judged there).
    def lazy_batchnorm(self, dims: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                       track_running_stats: bool = True) -> Layer:
        """LazyBatchNorm{dims}d: num_features inferred from the first input (BN-LAZY-01)."""
        raise NotProvided(f"{self.name} has no LazyBatchNorm{dims}d")

    def sync_batchnorm(self, dims: int, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                       affine: bool = True, track_running_stats: bool = True) -> Layer:
        """The synchronized BatchNorm (torch: SyncBatchNorm) in this single process, run on
        BatchNorm{dims}d inputs (BN-SYNC-01)."""
        raise NotProvided(f"{self.name} has no synchronized BatchNorm")

    def batchnorm_momentum_tensor(self, dims: int, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                                  affine: bool = True, track_running_stats: bool = True) -> Layer:
        """BatchNorm{dims}d constructed with the momentum given as the framework's 0-dimensional float64 tensor
        of the value `momentum` (torch: torch.tensor(momentum, dtype=torch.float64)) (BN-MOMTENSOR-01)."""
        raise NotProvided(f"{self.name}: a momentum given as a tensor")

    # transformations (spec/clauses.toml "Transformations"; dropnorm/reference/folding.py)
    def fold_methods(self) -> tuple:
        """The names of the ways this implementation folds an eval BatchNorm into the preceding convolution
        or linear layer (BN-FOLD-01); () when it has none (the clause is then not provided)."""
        return ()

    def fold_conv_bn(self, kind: str, weight, bias, bn: dict, x, *, method: str, dtype: str = "float32") -> Output:
        """Fold the eval BatchNorm `bn` (running_mean, running_var, eps, weight, bias; weight and bias None
        without affine parameters) into a `kind` layer ("Linear", "Conv1d", "Conv2d", "Conv3d", torch.nn's
        defaults: stride 1, no padding, one group) with `weight` and `bias` (None: no bias), everything held in
        `dtype`, with `method` (one of fold_methods()); run the folded layer on x. Returns its output, the
        folded parameters in extra["weight"] and extra["bias"]."""
        raise NotProvided(f"{self.name}: folding BatchNorm into a preceding layer")

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.target})"
