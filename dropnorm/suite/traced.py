"""The one traced path between the tests and an implementation under test.

`Traced(impl)` wraps any adapter (dropnorm/adapters): every public call the
tests make (seed, layer construction, train, forward, forward_backward, state,
load, to, roundtrip, gradcheck) is recorded with its arguments and the exact
input values, together with what it returned, in the current `Trace`. The
trace is what the report needs about a test (the dtypes, layouts and layer
kinds it exercised) and what reproductions are generated from
(dropnorm/suite/reproduce.py). Adapters therefore contain only framework calls.

The trace of the current hypothesis example is reset at the start of each
example (dropnorm.suite.strategies.given) and of each test (dropnorm.suite.plugin).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from dropnorm.adapters.base import Implementation, Layer, Output
from dropnorm.suite import state
from dropnorm.suite.input_classes import InputClassRejected, features
from dropnorm.spec.kinds import KINDS

@dataclass
class Call:
    """One call on the implementation or on one of its layers."""

    method: str                 # seed | construct | train | forward | forward_backward | state | load | to | ...
    layer: int | None           # the layer's number within the trace (None: a call on the implementation)
    kind: str | None            # the layer kind
    args: dict                  # the arguments, numpy arrays copied
    result: object = None       # Output, state dict, new layer number, bool
    error: str | None = None    # "TypeName: message" when the call raised


@dataclass
class Trace:
    """What the tests did with the implementation: the calls of the current example, and per test
    the (dtype, layout) pairs and layer kinds exercised in examples that ran to their end."""

    impl_spec: str = "torch"
    calls: list = field(default_factory=list)
    inputs: set = field(default_factory=set)           # (dtype, layout), whole test
    example_inputs: set = field(default_factory=set)   # (dtype, layout), current example
    kinds: set = field(default_factory=set)            # layer kinds called, examples that ran to their end
    example_kinds: set = field(default_factory=set)
    # (InputClass, (clause, condition)) the implementation raised on earlier in this test: later calls of such a
    # class are filtered out (dropnorm.suite.input_classes, dropnorm.suite.judging)
    rejected: list = field(default_factory=list)
    accepted: dict = field(default_factory=dict)      # kind -> features of isolated calls that returned, whole test
    builders: dict = field(default_factory=dict)      # layer number -> build(**constructor args): a fresh, untraced
    #                                                   layer of the same factory (dropnorm.suite.input_classes.replay)
    implementation_s: float = 0.0                     # seconds spent inside the implementation's calls, whole test
    _numbers: itertools.count = field(default_factory=itertools.count)

    def reset_test(self, impl_spec: str | None) -> None:
        if impl_spec is not None:
            self.impl_spec = impl_spec
        self.inputs.clear()
        self.kinds.clear()
        self.rejected.clear()
        self.accepted.clear()
        self.implementation_s = 0.0
        self.reset_example()

    def reset_example(self) -> None:
        self.calls.clear()
        self.builders.clear()
        self.example_inputs.clear()
        self.example_kinds.clear()
        self._numbers = itertools.count()

    def end_example(self) -> None:
        """The example ran to its end: what it exercised counts for the test."""
        self.inputs |= self.example_inputs
        self.kinds |= self.example_kinds

    def new_layer_number(self) -> int:
        return next(self._numbers)

    def add(self, call: Call) -> Call:
        self.calls.append(call)
        return call


def current_trace() -> Trace:
    """The trace of the run in progress (suite/state.py)."""
    run = state.current()
    if run.trace is None:
        run.trace = Trace()
    return run.trace


def _copy(value):
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _recorded(method):
    """Run `method` on the wrapped object, recording the call, its result or its exception."""
    def call(self, name, *, layer=None, kind=None, note=None, **args):
        trace = current_trace()
        rec = trace.add(Call(name, layer, kind, {k: _copy(v) for k, v in args.items()}))
        began = time.perf_counter()
        try:
            result = method(self, name, **args)
        except Exception as e:
            rec.error = f"{type(e).__name__}: {e}"
            raise
        finally:  # the implementation's own time, for the report's breakdown of where an audit's time goes
            trace.implementation_s += time.perf_counter() - began
        if note is not None:
            note(result)
        rec.result = _copy(result) if not isinstance(result, TracedLayer) else result.number
        return result
    return call


class TracedLayer:
    """A layer of the implementation under test; every call is recorded in the trace."""

    def __init__(self, inner: Layer, number: int, construct_args: dict | None = None):
        self.inner, self.number = inner, number
        self.kind, self.kwargs = inner.kind, dict(getattr(inner, "kwargs", {}))
        self.construct_args = dict(construct_args or {})

    def _admit(self, method: str, **args) -> frozenset:
        """Filter out a call of an input class the implementation raised on earlier in this test; return the
        call's features (dropnorm.suite.input_classes) for _accepted."""
        feats = features(self.kind, method, args, self.construct_args)
        for cls, (clause, condition) in current_trace().rejected:
            if cls.contains(self.kind, feats):
                raise InputClassRejected(f"filtered: {cls.describe()} raised earlier in this test "
                                         f"(failed as {clause}/{condition})")
        return feats

    def _accepted(self, feats: frozenset, result):
        current_trace().accepted.setdefault(self.kind, set()).update(feats)
        return result

    @_recorded
    def _call(self, name, **args):
        return getattr(self.inner, name)(**args)

    def _note_input(self, dtype, layout):
        current_trace().example_inputs.add((dtype, layout))
        current_trace().example_kinds.add(self.kind)

    @property
    def training(self) -> bool:
        return self.inner.training

    def train(self, mode: bool = True) -> None:
        self._call("train", layer=self.number, kind=self.kind, mode=mode)

    def forward(self, x, *, dtype="float32", layout="contiguous") -> Output:
        feats = self._admit("forward", x=np.asarray(x), dtype=dtype, layout=layout)
        self._note_input(dtype, layout)
        return self._accepted(feats, self._call("forward", layer=self.number, kind=self.kind, x=np.asarray(x),
                                                dtype=dtype, layout=layout))

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous") -> Output:
        feats = self._admit("forward_backward", x=np.asarray(x), dtype=dtype, layout=layout)
        self._note_input(dtype, layout)
        return self._accepted(feats, self._call("forward_backward", layer=self.number, kind=self.kind,
                                                x=np.asarray(x), dy=np.asarray(dy), dtype=dtype, layout=layout))

    def state(self) -> dict:
        return self._call("state", layer=self.number, kind=self.kind)

    def load(self, **values) -> None:
        self._call("load", layer=self.number, kind=self.kind, **values)

    def to(self, dtype: str) -> None:
        self._call("to", layer=self.number, kind=self.kind, dtype=dtype)

    def gradcheck(self, x, *, second_order: bool) -> bool:
        self._note_input("float64", "contiguous")
        return self._call("gradcheck", layer=self.number, kind=self.kind, x=np.asarray(x),
                          second_order=second_order)

    def roundtrip(self) -> "TracedLayer":
        rec = current_trace().add(Call("roundtrip", self.number, self.kind, {}))
        try:
            fresh = TracedLayer(self.inner.roundtrip(), current_trace().new_layer_number(), self.construct_args)
        except Exception as e:
            rec.error = f"{type(e).__name__}: {e}"
            raise
        rec.result = fresh.number
        return fresh

    # the rest of the BatchNorm family (issue 15)
    def reset_running_stats(self) -> None:
        self._call("reset_running_stats", layer=self.number, kind=self.kind)

    def reset_parameters(self) -> None:
        self._call("reset_parameters", layer=self.number, kind=self.kind)

    def load_state(self, values: dict, *, legacy: bool = False) -> None:
        self._call("load_state", layer=self.number, kind=self.kind, values=dict(values), legacy=legacy)

    def forward_in(self, x, *, context: str, dtype="float32") -> Output:
        self._note_input(dtype, "contiguous")
        return self._call("forward_in", layer=self.number, kind=self.kind, x=np.asarray(x), context=context,
                          dtype=dtype)

    def convert_sync(self) -> "TracedLayer":
        rec = current_trace().add(Call("convert_sync", self.number, self.kind, {}))
        try:
            fresh = TracedLayer(self.inner.convert_sync(), current_trace().new_layer_number(), self.construct_args)
        except Exception as e:
            rec.error = f"{type(e).__name__}: {e}"
            raise
        rec.result = fresh.number
        return fresh


    def __getattr__(self, name):  # anything else an adapter offers (not traced)
        return getattr(self.inner, name)

    # issue 24: the module API beyond values
    def state_keys(self) -> tuple:
        return self._call("state_keys", layer=self.number, kind=self.kind)

    def output_format(self, x, *, dtype="float32", layout="contiguous") -> Output:
        self._note_input(dtype, layout)
        return self._call("output_format", layer=self.number, kind=self.kind, x=np.asarray(x), dtype=dtype,
                          layout=layout)

    def set_tracking(self, mode: bool) -> None:
        self._call("set_tracking", layer=self.number, kind=self.kind, mode=mode)

    def inplace_autograd(self, x, *, how: str, dtype="float32") -> Output:
        self._note_input(dtype, "contiguous")
        return self._call("inplace_autograd", layer=self.number, kind=self.kind, x=np.asarray(x), how=how,
                          dtype=dtype)

    def forward_backward_deterministic(self, x, dy, *, dtype="float32") -> Output:
        self._note_input(dtype, "contiguous")
        return self._call("forward_backward_deterministic", layer=self.number, kind=self.kind, x=np.asarray(x),
                          dy=np.asarray(dy), dtype=dtype)

    def vmap_forward(self, x, *, randomness="error", dtype="float32") -> Output:
        self._note_input(dtype, "contiguous")
        return self._call("vmap_forward", layer=self.number, kind=self.kind, x=np.asarray(x), randomness=randomness,
                          dtype=dtype)

    def replace_batch_norm(self) -> None:
        self._call("replace_batch_norm", layer=self.number, kind=self.kind)

    def functional_forward(self, x, *, dtype="float32") -> Output:
        self._note_input(dtype, "contiguous")
        return self._call("functional_forward", layer=self.number, kind=self.kind, x=np.asarray(x), dtype=dtype)


class Traced:
    """An implementation under test, seen through the trace."""

    def __init__(self, inner: Implementation, spec: str | None = None):
        self.inner = inner
        self.spec = spec or inner.name

    def __getattr__(self, name):  # name, version, target, convention, expresses, describe, rng_state, ...
        return getattr(self.inner, name)

    def provides(self, kind: str) -> bool:
        return self.inner.provides(kind)

    def seed(self, seed: int) -> None:
        current_trace().add(Call("seed", None, None, {"seed": seed}))
        self.inner.seed(seed)

    def _construct(self, kind: str, factory: str, **kwargs) -> TracedLayer:
        if kind in KINDS and self.inner.provides(kind):
            current_trace().example_kinds.add(kind)  # a construction checks the kind too (the API clauses)
        number = current_trace().new_layer_number()
        rec = current_trace().add(Call("construct", number, kind, dict(kwargs, factory=factory)))
        try:
            layer = getattr(self.inner, factory)(**kwargs)
        except Exception as e:
            rec.error = f"{type(e).__name__}: {e}"
            raise
        rec.result = number
        current_trace().builders[number] = getattr(self.inner, factory)
        return TracedLayer(layer, number, kwargs)

    def dropout(self, p=0.5, inplace=False) -> TracedLayer:
        return self._construct("Dropout", "dropout", p=p, inplace=inplace)

    def dropout2d(self, p=0.5, inplace=False) -> TracedLayer:
        return self._construct("Dropout2d", "dropout2d", p=p, inplace=inplace)

    def dropout1d(self, p=0.5, inplace=False) -> TracedLayer:
        return self._construct("Dropout1d", "dropout1d", p=p, inplace=inplace)

    def dropout3d(self, p=0.5, inplace=False) -> TracedLayer:
        return self._construct("Dropout3d", "dropout3d", p=p, inplace=inplace)

    def alpha_dropout(self, p=0.5, inplace=False) -> TracedLayer:
        return self._construct("AlphaDropout", "alpha_dropout", p=p, inplace=inplace)

    def feature_alpha_dropout(self, p=0.5, inplace=False) -> TracedLayer:
        return self._construct("FeatureAlphaDropout", "feature_alpha_dropout", p=p, inplace=inplace)

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True,
                  track_running_stats=True) -> TracedLayer:
        return self._construct(f"BatchNorm{dims}d", "batchnorm", dims=dims, num_features=num_features, eps=eps,
                               momentum=momentum, affine=affine, track_running_stats=track_running_stats)

    def batchnorm_defaults(self, dims, num_features) -> TracedLayer:
        return self._construct(f"BatchNorm{dims}d", "batchnorm_defaults", dims=dims, num_features=num_features)

    # the rest of the BatchNorm family (issue 15): recorded under the class a reproduction constructs
    def lazy_batchnorm(self, dims, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True) -> TracedLayer:
        return self._construct(f"LazyBatchNorm{dims}d", "lazy_batchnorm", dims=dims, eps=eps, momentum=momentum,
                               affine=affine, track_running_stats=track_running_stats)

    def sync_batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True,
                       track_running_stats=True) -> TracedLayer:
        return self._construct("SyncBatchNorm", "sync_batchnorm", dims=dims, num_features=num_features, eps=eps,
                               momentum=momentum, affine=affine, track_running_stats=track_running_stats)

    # issue 24
    def batchnorm_momentum_tensor(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True,
                                  track_running_stats=True) -> TracedLayer:
        return self._construct(f"BatchNorm{dims}d", "batchnorm_momentum_tensor", dims=dims, num_features=num_features,
                               eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats)
