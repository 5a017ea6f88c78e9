"""Random sequences of what users do with a BatchNorm layer, against a float64 model (issue 22, "sequences are
short and fixed").

A hypothesis RuleBasedStateMachine builds one layer (BatchNorm1d/2d/3d, affine or not, with or without running
statistics, momentum a number or None, parameters, running statistics and a counter as a trained layer has
them, from a long run too) and then runs a random sequence of: train()/eval(); a forward (batch sizes and
ranks drawn per call, input dtypes the layer's dtype allows); a forward and backward; a conversion of the layer
(.half(), .bfloat16(), .double(), .float(), with matching inputs afterwards); a copy (the framework's state
round trip, copy.deepcopy, pickle) that the sequence continues with; loading a checkpoint in the forms users
produce (torch's state_dict with `_metadata`, a legacy one without the counter, a plain dict comprehension
without `_metadata`, a non-strict load without the counter); reset_running_stats() / reset_parameters().

The model is the previous step's observed state plus the operation's effect, computed in float64 by the
reference (dropnorm/reference/batchnorm.py): after every step every output and every parameter and buffer is compared
with it, values and dtypes (the counter's integer dtype included), outputs and running statistics within the
bounds of dropnorm/spec/tolerances.py for the dtypes involved (bn_train_output, bn_eval_output, bn_running,
bn_train_grads, bn_eval_grads: each derived from the unit roundoff of the input's dtype, of the working
precision, float32 for float16/bfloat16, and of the dtype the statistics are kept in), everything exact
(bitwise or equal integers) where the operation only moves or rounds values: eval calls, conversions, copies,
loads, resets. Taking the observed state as the next step's start (once judged) keeps one wrong step from
being blamed again on every later one; the integers (the counter) are carried exactly.

Each comparison cites the clause that says what it expects (see the rules). The layer kinds
are covered for certain, as strategies.given does: one hypothesis run per provided kind, each with 1/k of the
profile's examples (dropnorm/suite/profiles.py) times EXAMPLE_FACTOR, STEPS steps each. Three tests: the core sequence, the core sequence
with checkpoint loads (BN-LOAD-01) and with resets (BN-RESET-01), so that an implementation without a loader or
a reset keeps the core sequence judged and gets those clauses not provided, never passed.
"""
from __future__ import annotations

import math

import hypothesis
import numpy as np
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.spec import conventions
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.spec import tolerances as tol
from dropnorm.adapters.base import BATCHNORM_RANKS, NotProvided
from dropnorm.spec.dtypes import round_to
from dropnorm.suite.traced import current_trace, Call, TracedLayer
from dropnorm.suite.bn_setup import GRID_SHAPES, build_case, grid_dims
from dropnorm.reference import batchnorm as refbn

LOW = hh.LOW_PRECISION
PARAMS = ("weight", "bias")
STATS = ("running_mean", "running_var")
FLOATS = PARAMS + STATS
# Steps per sequence: 15. hypothesis's stateful runs use swarm testing (each example enables a random subset of
# the 3 to 5 rules) and start from the minimal example (one rule repeated), so coverage comes from the number of
# examples more than from their length: with half the rules enabled, a rule runs 15/3.5 = 4 times, enough for a
# conversion followed by calls or a load or reset after the statistics moved; each step draws the mode it runs
# in (MODES), so both modes are met whatever rules are enabled. EXAMPLE_FACTOR: each kind gets twice its share
# of the profile's examples (quick: 6 per kind instead of 3), so that two or three examples besides the minimal
# one meet each rule.
STEPS = 15
EXAMPLE_FACTOR = 2
# num_batches_tracked of a trained layer: the first calls, the ends of the exactly representable ranges of
# float32 (2^24), int32 and float64 (2^53), and anything up to 2^62 (torch's int64 buffer; 2^63 - 1 would
# overflow after a few calls). A counter kept in or incremented through a float stalls or rounds there.
COUNTERS = st.one_of(st.integers(0, 5),
                     st.sampled_from([2 ** 24 - 1, 2 ** 24, 2 ** 24 + 1, 2 ** 31 - 1, 2 ** 31, 2 ** 53 - 1, 2 ** 53,
                                      2 ** 53 + 1, 2 ** 62]),
                     st.integers(0, 2 ** 62))
# The mode a step runs in: eval, training, or as the layer is (None). Eval first: hypothesis tries and shrinks
# towards the first value, and a step in eval (a reset, a load, a call after model.eval()) is the region fixed
# sequences (construct, train, call) never reach.
MODES = st.sampled_from([False, True, None])
CORE = ("BN-TRAIN-01", "BN-TRAIN-02", "BN-TRAIN-03", "BN-TRAIN-04", "BN-TRAIN-05", "BN-EVAL-01", "BN-EVAL-03",
        "BN-NOTRACK-01", "BN-GRAD-01", "BN-GRAD-03", "BN-DTYPE-01", "BN-DTYPE-02", "BN-STATE-01")


# ------------------------------------------------------------------------------------------------ tracing
def _call(layer: TracedLayer, method: str, **args):
    """layer.<method>(**args), recorded in the trace under the interface's method name (reproductions)."""
    return layer._call(method, layer=layer.number, kind=layer.kind, **args)


def _copy(layer: TracedLayer, how: str) -> TracedLayer:
    """A copy of the layer: the framework's state round trip (roundtrip), copy.deepcopy or pickle (copy_layer)."""
    if how == "roundtrip":
        return layer.roundtrip()
    rec = current_trace().add(Call("copy_layer", layer.number, layer.kind, {"how": how}))
    try:
        fresh = TracedLayer(layer.inner.copy_layer(how), current_trace().new_layer_number(), layer.construct_args)
    except Exception as e:
        rec.error = f"{type(e).__name__}: {e}"
        raise
    rec.result = fresh.number
    return fresh


def _counter_check(got, expected, clause: str, condition: str, what: str) -> None:
    """num_batches_tracked equals the expected integer exactly."""
    __tracebackhide__ = True
    ph.check(got == expected, clause, condition, f"got num_batches_tracked {got!r}, expected {expected!r} [{what}]",
             observed=got, expected=expected, severity="wrong-state")


def _exact(state: dict, expected: dict, clause: str, condition: str, what: str, keys=FLOATS) -> None:
    """The float parameters and buffers of `state` equal `expected`'s bitwise (where the layer has them)."""
    __tracebackhide__ = True
    for key in keys:
        if expected.get(key) is not None and state.get(key) is not None:
            ph.assert_equal(state[key], expected[key], clause, condition, f"{key}, {what}")


def _check_dtypes(layer: TracedLayer, pdt: str, conv, track: bool, what: str) -> None:
    """Parameters and running statistics in the layer's dtype pdt; the counter an integer (torch: int64)."""
    __tracebackhide__ = True
    try:
        dtypes = _call(layer, "dtypes")
    except NotProvided:
        got = layer.state()["param_dtype"]
        if got is not None:
            ph.check(got == pdt, ("BN-DTYPE-02" if pdt in LOW else "BN-DTYPE-01"), "stats-dtype",
                     f"got parameters/statistics in {got}, expected {pdt} [{what}]",
                     observed=got, expected=pdt, severity="wrong-state")
        return
    for key in FLOATS:
        if key in dtypes:
            ph.check(dtypes[key] == pdt, ("BN-DTYPE-02" if pdt in LOW else "BN-DTYPE-01"), "stats-dtype",
                     f"got {key} in {dtypes[key]}, expected {pdt} [{what}]",
                     observed=dtypes[key], expected=pdt, severity="wrong-state")
    if conv.counter and track and "num_batches_tracked" in dtypes:
        got = dtypes["num_batches_tracked"]
        ok = got == "int64" if conv.name == "torch" else got.startswith(("int", "uint"))
        ph.check(ok, "BN-TRAIN-05", "counter-dtype",
                 f"got num_batches_tracked in {got}, expected {'int64' if conv.name == 'torch' else 'an integer dtype'} "
                 f"[{what}]", observed=got, expected="int64", severity="wrong-state")


# ------------------------------------------------------------------------------------------ the machine
class _Sequences(RuleBasedStateMachine):
    """One layer and its float64 model; subclassed per run with impl, conv, dims and ops (the rules enabled)."""

    impl = None
    conv = None
    dims = 1
    ops: frozenset = frozenset()

    def __init__(self):
        super().__init__()
        current_trace().reset_example()
        self.layer = None
        self.ok = False
        self.off: set = set()        # operations the implementation turned out not to provide
        self.steps: list = []

    @property
    def kind(self) -> str:
        return f"BatchNorm{self.dims}d"

    def teardown(self):
        if self.layer is not None and self.ok:  # the example ran to its end: it counts (strategies.given)
            ph.context().examples += 1
            current_trace().end_example()

    # ---------------------------------------------------------------- helpers
    def _begin(self, step: str) -> None:
        self.ok = False
        self.steps.append(step)

    def what(self) -> str:
        shown = self.steps if len(self.steps) <= 8 else ["..."] + self.steps[-8:]
        return (f"BatchNorm{self.dims}d({self.c}, eps={self.eps:.3g}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track}) in {self.pdt}, {'training' if self.training else 'eval'}; "
                f"steps: {' -> '.join(shown)}")

    def _set_mode(self, mode) -> None:
        """The mode a user puts the layer in before the step (model.eval(); bn.reset_running_stats()), or None:
        the layer's current one. Drawn with the step, so every step meets both modes whatever rules hypothesis's
        swarm testing leaves enabled in an example."""
        if mode is not None and mode != self.training:
            self.layer.train(mode)
            self.training = mode
            self.steps[-1] = f"train({mode}) -> " + self.steps[-1]

    def _unavailable(self, op: str, e: NotProvided) -> None:
        """An operation the implementation does not provide: not drawn again in this example."""
        self.off.add(op)
        self.steps[-1] += f" (not provided: {str(e)[:80]})"
        self.ok = True

    def _state(self) -> dict:
        return self.layer.state()

    def _check_dtypes(self, what: str) -> None:
        _check_dtypes(self.layer, self.pdt, self.conv, self.track, what)

    def _set_model(self, state: dict) -> None:
        """The next step starts from the observed (judged) state; the dtype stays the one the layer should have."""
        self.m = {k: None if state.get(k) is None else (np.array(state[k]) if k in FLOATS else int(state[k]))
                  for k in FLOATS + ("num_batches_tracked",)}

    # ---------------------------------------------------------------- construction
    @initialize(data=st.data())
    def construct(self, data):
        """A layer as users have it: constructed, then holding trained parameters, statistics and counter. An
        example needing what the implementation cannot express is filtered out, its reason reported
        (strategies.given)."""
        self._begin("construct")
        try:
            self._construct(data)
        except NotProvided as e:
            ctx = ph.context()
            ctx.not_provided[str(e)] = ctx.not_provided.get(str(e), 0) + 1
            self.layer = None
            hypothesis.reject()

    def _construct(self, data):
        impl, kind, conv = self.impl, self.kind, self.conv
        self.c = data.draw(st.integers(1, 4), label="num_features")
        eps = data.draw(hh.eps_values(), label="eps")
        self.momentum = data.draw(hh.momenta(allow_none=impl.expresses(kind, momentum=None)), label="momentum")
        self.affine = data.draw(hh.expressed(impl, kind, "affine", (True, False)), label="affine")
        # tracked 3 times in 4: the state operations need running statistics (BN-NOTRACK-01 keeps the rest)
        tracks = [t for t in (True, True, True, False) if impl.expresses(kind, track_running_stats=t)]
        if not tracks:
            raise NotProvided(f"{impl.name} expresses {kind} with neither track_running_stats value")
        self.track = data.draw(st.sampled_from(tracks), label="track_running_stats")
        if not impl.expresses(kind, dtype="float32", param_dtype="float32"):
            raise NotProvided(f"{impl.name}: {kind} with float32 parameters")
        self.layer = impl.batchnorm(self.dims, self.c, eps=eps, momentum=self.momentum, affine=self.affine,
                                    track_running_stats=self.track)
        self.eps = conv.attribute(eps)   # the eps the layer stores
        self.pdt, self.training = "float32", True
        self.layer.train(True)
        seed = data.draw(hh.seeds(), label="seed")
        values = {}
        if self.affine:
            values.update(weight=inputs.vector(seed + 1, self.c, "float32", loc=1.0),
                          bias=inputs.vector(seed + 2, self.c, "float32", scale=2.0))
        if self.track:
            values.update(running_mean=inputs.vector(seed + 3, self.c, "float32", scale=2.0),
                          running_var=inputs.vector(seed + 4, self.c, "float32", positive=True))
            if conv.counter:
                values["num_batches_tracked"] = data.draw(COUNTERS, label="num_batches_tracked")
        if values:
            self.layer.load(**values)
        self.m = {k: values.get(k) for k in FLOATS + ("num_batches_tracked",)}
        self.m["num_batches_tracked"] = values.get("num_batches_tracked", 0 if self.track and conv.counter else None)
        self._check_dtypes(self.what())
        self.ok = True

    # ---------------------------------------------------------------- forward / backward
    def _input(self, data):
        ndim = data.draw(st.sampled_from(BATCHNORM_RANKS[self.dims]), label="input rank")
        sides = data.draw(st.lists(st.integers(1, 5), min_size=ndim - 1, max_size=ndim - 1), label="N and spatial sizes")
        if math.prod(sides) < 2:  # n >= 2 values per channel: a training call needs them (BN-TRAIN-06)
            sides[0] = 2
        shape = (sides[0], self.c) + tuple(sides[1:])
        if self.pdt == "float32":   # mixed precision: half inputs to float32 parameters (BN-DTYPE-01)
            allowed = [d for d in ("float32", "float16", "bfloat16")
                       if self.impl.expresses(self.kind, dtype=d, param_dtype="float32")]
        else:                       # a converted layer takes inputs of its own dtype
            allowed = [self.pdt]
        dtype = data.draw(st.sampled_from(allowed), label="input dtype")
        seed = data.draw(hh.seeds(), label="input seed")
        return inputs.channels(seed, shape, dtype, offset=3.0), dtype, seed

    @rule(data=st.data(), mode=MODES, backward=st.booleans())
    def forward(self, data, mode, backward):
        """y = layer(x), and with backward y.backward(dy). The backward only for float32/float64 inputs and
        parameters: no clause bounds gradients with half parameters (BN-DTYPE-02 is about outputs; the gradient
        bounds of dropnorm/spec/tolerances.py assume float32 or float64 parameters), and half-input gradients are
        test_batchnorm_grad.py's (torch 2.13.0 exceeds the bounds in sequences: a bfloat16 BatchNorm1d layer's dx
        off by 1.07 against 0.78; a float32 BatchNorm3d(affine=False, track_running_stats=False) in eval with a
        bfloat16 input, dx off by 0.072 against 0.0699: left for an issue of their own)."""
        self._forward(data, mode, backward=backward)

    def _forward(self, data, mode, *, backward: bool):
        x, dtype, seed = self._input(data)
        backward = backward and dtype not in LOW and self.pdt not in LOW
        self._begin(f"{'forward_backward' if backward else 'forward'}({x.shape} {dtype})")
        self._set_mode(mode)
        what = self.what()
        m, conv = self.m, self.conv
        batch = self.training or not self.track
        w, b = m["weight"], m["bias"]
        if batch:
            expected = ref.batchnorm_train_forward(x, w, b, self.eps)
            atol, _ = tol.bn_train_output(x, w, b, self.eps, dtype)
        else:
            expected = ref.batchnorm_eval_forward(x, m["running_mean"], m["running_var"], w, b, self.eps)
            atol = tol.bn_eval_output(x, m["running_mean"], m["running_var"], w, b, self.eps, dtype)
        dy = inputs.channels(seed + 5, x.shape, dtype) if backward else None
        # a layer converted to a half dtype: BN-DTYPE-02; a half input to a float32 layer in training: BN-DTYPE-01;
        # else BN-TRAIN-01 (training) or BN-EVAL-01 (eval, in every dtype, as test_batchnorm_eval.py)
        clause = ("BN-DTYPE-02" if self.pdt in LOW else "BN-EVAL-01" if not self.training
                  else "BN-DTYPE-01" if dtype in LOW else "BN-TRAIN-01")
        try:
            out = (self.layer.forward_backward(x, dy, dtype=dtype) if backward
                   else self.layer.forward(x, dtype=dtype))
        except NotProvided as e:  # a call the implementation cannot express (a dtype, a backward): skipped
            self._unavailable(f"forward in {dtype}", e)
            return
        except Exception as e:  # noqa: BLE001 - an output was due
            message = f"got {type(e).__name__}: {str(e)[:300]}, expected an output [{what}]"
            if self.track or self.pdt in LOW:
                ph.check(False, clause, "output", message, severity="exception")
            else:
                ph.check(False, "BN-NOTRACK-01", "train-output" if self.training else "eval-output", message,
                         severity="exception")
            self._set_model(self._state())   # masked (a rerun judging the rest): go on from what the layer holds
            self.ok = True
            return
        ph.assert_dtype(out.dtype, dtype, ("BN-DTYPE-02" if self.pdt in LOW else "BN-DTYPE-01"), what)
        if self.track or self.pdt in LOW:
            ph.assert_close(out.y, expected, atol, clause, "output", what)
        else:
            ph.assert_close(out.y, expected, atol, "BN-NOTRACK-01", "train-output" if self.training else "eval-output",
                            what)
        if backward:
            self._check_gradients(out, x, dy, dtype, batch, what)
        state = self._state()
        if self.training and self.track:
            self._check_running(state, x, dtype, what)
        elif not self.training:
            # an eval call changes no state (BN-EVAL-03): every parameter, buffer and the counter, exactly
            for key in FLOATS:
                if m[key] is not None and state[key] is not None:
                    ph.assert_equal(state[key], m[key], "BN-EVAL-03", f"{key}-unchanged", what)
            if m["num_batches_tracked"] is not None:
                _counter_check(state["num_batches_tracked"], m["num_batches_tracked"], "BN-EVAL-03",
                                    "num_batches_tracked-unchanged", what)
        self._check_dtypes(what)
        self._set_model(state)
        self.ok = True

    def _check_gradients(self, out, x, dy, dtype, batch: bool, what: str) -> None:
        m = self.m
        if batch:
            exp = ref.batchnorm_train_backward(x, dy, m["weight"], self.eps)
            bounds = tol.bn_train_grads(x, dy, m["weight"], self.eps, dtype, self.pdt)
            clause = "BN-GRAD-01"
        else:
            exp = ref.batchnorm_eval_backward(x, dy, m["running_mean"], m["running_var"], m["weight"], self.eps)
            bounds = tol.bn_eval_grads(x, dy, m["running_mean"], m["running_var"], m["weight"], self.eps, dtype,
                                       self.pdt)
            clause = "BN-GRAD-03"
        ph.assert_close(out.dx, exp[0], bounds[0], clause, "dx", what)
        if self.affine:
            ph.assert_close(out.dweight, exp[1], bounds[1], clause, "dgamma", what)
            ph.assert_close(out.dbias, exp[2], bounds[2], clause, "dbias", what)

    def _check_running(self, state, x, dtype, what) -> None:
        """One training call's update from the previous state: BN-TRAIN-02/03 (a momentum), BN-TRAIN-04
        (momentum=None: m = 1/t with t the counter after the increment), BN-TRAIN-05 (t + 1, exactly)."""
        m, conv = self.m, self.conv
        t0 = m["num_batches_tracked"] if m["num_batches_tracked"] is not None else 0
        fm = None if self.momentum is None else conv.framework_momentum(self.momentum)
        if conv.zero_debias:  # excluded in _run; kept here so the model says what it assumes
            raise NotProvided("zero-debiased running statistics")
        rm, rv, t = ref.running_update(m["running_mean"], m["running_var"], t0, x, fm, momentum_of=conv.momentum_of,
                                       variance=conv.running_var)
        weight = 1.0 / t if self.momentum is None else conv.new_batch_weight(self.momentum, t)
        d_rm, d_rv = tol.bn_running(x, m["running_mean"], m["running_var"], weight, dtype, self.pdt,
                                    variance=conv.running_var)
        step = f"{what}; the update from t = {t0}, new-batch weight {weight:.6g}"
        if self.momentum is None:
            ph.assert_close(state["running_mean"], rm, d_rm, "BN-TRAIN-04", "mean-average", step)
            ph.assert_close(state["running_var"], rv, d_rv, "BN-TRAIN-04", "var-average", step)
        else:
            ph.assert_close(state["running_mean"], rm, d_rm, "BN-TRAIN-02", "running-mean", step)
            ph.assert_close(state["running_var"], rv, d_rv, "BN-TRAIN-03", "running-var", step)
        if m["num_batches_tracked"] is not None:
            _counter_check(state["num_batches_tracked"], t, "BN-TRAIN-05", "count", step)

    # ---------------------------------------------------------------- conversion
    @precondition(lambda self: "convert" not in self.off)
    @rule(data=st.data())
    def convert(self, data):
        """layer.half() / .bfloat16() / .double() / .float(): parameters and running statistics rounded to the
        dtype, bitwise; the counter as it was; the next calls take inputs of that dtype."""
        allowed = [d for d in ("float16", "bfloat16", "float64", "float32")
                   if self.impl.expresses(self.kind, dtype=d, param_dtype=d)]
        dtype = data.draw(st.sampled_from(allowed), label="convert the layer to")
        self._begin(f"to({dtype})")
        try:
            self.layer.to(dtype)
        except NotProvided as e:
            self._unavailable("convert", e)
            return
        self.pdt = dtype
        what = self.what()
        state = self._state()
        expected = {k: None if self.m[k] is None else round_to(self.m[k], dtype) for k in FLOATS}
        _exact(state, expected, ("BN-DTYPE-02" if dtype in LOW else "BN-DTYPE-01"), "converted-state", what)
        if self.m["num_batches_tracked"] is not None:
            _counter_check(state["num_batches_tracked"], self.m["num_batches_tracked"], ("BN-DTYPE-02" if dtype in LOW else "BN-DTYPE-01"),
                                "converted-state", what)
        self._check_dtypes(what)
        self._set_model(state)
        self.ok = True

    # ---------------------------------------------------------------- copies
    @precondition(lambda self: "copy" not in self.off)
    @rule(how=st.sampled_from(["roundtrip", "deepcopy", "pickle"]))
    def copy(self, how):
        """The framework's state round trip into a fresh layer, copy.deepcopy, a pickle round trip: the sequence
        goes on with the copy, which holds the same values bitwise, dtypes, counter and mode (BN-STATE-01)."""
        self._begin(f"copy by {how}")
        before = self._state()
        try:
            fresh = _copy(self.layer, how)
        except NotProvided as e:
            self._unavailable("copy", e)
            return
        what = self.what()
        state = fresh.state()
        _exact(state, before, "BN-STATE-01", "copied-state", what)
        if before["num_batches_tracked"] is not None:
            _counter_check(state["num_batches_tracked"], before["num_batches_tracked"], "BN-STATE-01", "counter",
                                what)
        ph.check(fresh.training == self.training, "BN-STATE-01", "copied-state",
                 f"got the copy in {'training' if fresh.training else 'eval'} mode, expected "
                 f"{'training' if self.training else 'eval'} [{what}]", severity="wrong-state")
        self.layer = fresh
        self._check_dtypes(what)
        self._set_model(state)
        self.ok = True

    # ---------------------------------------------------------------- checkpoints (BN-LOAD-01)
    def _checkpoint(self, data) -> dict:
        """New values of every parameter and buffer the layer has, as float32 values (a checkpoint of another
        run); the layer's loader rounds them to its dtype."""
        seed = data.draw(hh.seeds(), label="checkpoint seed")
        values = {}
        if self.m["weight"] is not None:
            values.update(weight=inputs.vector(seed + 1, self.c, "float32", loc=1.0),
                          bias=inputs.vector(seed + 2, self.c, "float32", scale=2.0))
        if self.m["running_mean"] is not None:
            values.update(running_mean=inputs.vector(seed + 3, self.c, "float32", scale=2.0),
                          running_var=inputs.vector(seed + 4, self.c, "float32", positive=True))
        return values

    def _load(self, data, form: str, mode) -> None:
        what_form = {"state_dict": "torch's state_dict (with _metadata)", "legacy": "a legacy state (version 1, "
                     "no counter)", "plain": "a plain dict (no _metadata)", "partial": "a state without the counter, "
                     "strict=False"}[form]
        values = self._checkpoint(data)
        has_counter = self.m["num_batches_tracked"] is not None
        if has_counter and form in ("state_dict", "plain"):
            values["num_batches_tracked"] = data.draw(COUNTERS, label="num_batches_tracked saved")
        self._begin(f"load {what_form}" + (f" with num_batches_tracked={values['num_batches_tracked']}"
                                           if "num_batches_tracked" in values else ""))
        self._set_mode(mode)
        what = self.what()
        try:
            if form in ("state_dict", "legacy"):
                _call(self.layer, "load_state", values=dict(values), legacy=form == "legacy")
            else:
                _call(self.layer, "load_checkpoint", values=dict(values), form=form)
        except NotProvided as e:
            self._unavailable(form, e)
            return
        except Exception as e:  # noqa: BLE001
            ph.check(False, "BN-LOAD-01", "legacy-loads" if form == "legacy" else "loads",
                     f"the load raised {type(e).__name__}: {str(e)[:300]} [{what}]", severity="exception")
            self._set_model(self._state())
            self.ok = True
            return
        ph.held("BN-LOAD-01", "legacy-loads" if form == "legacy" else "loads")
        state = self._state()
        expected = {k: round_to(v, self.pdt) for k, v in values.items() if k in FLOATS}
        _exact(state, expected, "BN-LOAD-01", "values", what)
        if has_counter:
            t = refbn.counter_after_load(self.m["num_batches_tracked"], values, legacy="num_batches_tracked" not in values)
            condition = ("counter" if form == "state_dict" else "plain-counter" if form == "plain"
                         else "legacy-counter" if form == "legacy" else "partial-counter")
            _counter_check(state["num_batches_tracked"], t, "BN-LOAD-01", condition,
                                f"{what}; expected {'the saved counter' if 'num_batches_tracked' in values else 'the layer’s own counter'}")
        self._check_dtypes(what)
        self._set_model(state)
        self.ok = True

    @precondition(lambda self: "load" in self.ops)
    @rule(data=st.data(), form=st.sampled_from(["state_dict", "legacy"]), mode=MODES)
    def load_saved_state(self, data, form, mode):
        """torch's own formats: a state_dict() (version 2, with the counter), a legacy one (version 1, without)."""
        if form in self.off:
            form = "state_dict"
        if form in self.off:
            return
        self._load(data, form, mode)

    @precondition(lambda self: "load" in self.ops)
    @rule(data=st.data(), form=st.sampled_from(["plain", "partial"]), mode=MODES)
    def load_edited_dict(self, data, form, mode):
        """What users make of a state dict: a plain dict comprehension ({k: v for k, v in sd.items()}, e.g.
        stripping a `module.` prefix), or a state without num_batches_tracked loaded with strict=False."""
        if form in self.off:
            return
        self._load(data, form, mode)

    # ---------------------------------------------------------------- resets (BN-RESET-01)
    @precondition(lambda self: "reset" in self.ops and "reset" not in self.off)
    @rule(which=st.sampled_from(["reset_running_stats", "reset_parameters"]), mode=MODES)
    def reset(self, which, mode):
        """In whatever mode the layer is: running_mean 0, running_var 1, counter 0 (tracked); reset_parameters
        also weight 1 and bias 0; reset_running_stats keeps them."""
        self._begin(f"{which}()")
        self._set_mode(mode)
        try:
            _call(self.layer, which)
        except NotProvided as e:
            self._unavailable("reset", e)
            return
        what = self.what()
        state = self._state()
        fresh = refbn.initial_state(self.c, affine=self.affine, track_running_stats=self.track)
        if self.track:
            ph.assert_equal(state["running_mean"], fresh["running_mean"], "BN-RESET-01", "running-mean", what)
            ph.assert_equal(state["running_var"], fresh["running_var"], "BN-RESET-01", "running-var", what)
            if self.m["num_batches_tracked"] is not None:
                _counter_check(state["num_batches_tracked"], 0, "BN-RESET-01", "counter", what)
        if self.affine and which == "reset_parameters":
            ph.assert_equal(state["weight"], fresh["weight"], "BN-RESET-01", "weight", what)
            ph.assert_equal(state["bias"], fresh["bias"], "BN-RESET-01", "bias", what)
        elif self.affine:
            _exact(state, self.m, "BN-RESET-01", "parameters-kept", what, keys=PARAMS)
        self._check_dtypes(what)
        self._set_model(state)
        self.ok = True


# ------------------------------------------------------------------------------------------------ runner
def _run(impl, ops: frozenset) -> None:
    """The machine once per provided BatchNorm kind, each run with 1/k of the profile's examples (at least one)
    and STEPS steps; derandomized and shrunk as the profile and the implementation say (strategies.given)."""
    conv = conventions.of(impl)
    if conv.zero_debias:
        raise NotProvided(f"the {conv.name} convention's zero-debiased running statistics are not modelled by "
                          "the sequence machine")
    kinds = [k for k in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d") if impl.provides(k)]
    if not kinds:
        raise NotProvided(f"{impl.name} provides no BatchNormNd")
    own = settings.default
    n = max(1, -(-EXAMPLE_FACTOR * own.max_examples // len(kinds)))
    phases = own.phases if getattr(impl, "shrinks_failures", True) else [p for p in own.phases if p != Phase.shrink]
    for kind in kinds:
        machine = type(f"BatchNorm{kind[9]}dSequences", (_Sequences,),
                       {"impl": impl, "conv": conv, "dims": int(kind[9]), "ops": ops})

        run_state_machine_as_test(machine, settings=settings(own, max_examples=n, stateful_step_count=STEPS,
                                                             phases=phases))


def _require(impl, op: str) -> None:
    """Raise NotProvided before hypothesis runs when the implementation lacks the operation (a throwaway layer
    of the first provided kind, untraced) or the counter the operation's clause is about."""
    conv = conventions.of(impl)
    if not conv.counter:
        raise NotProvided(f"the {conv.name} convention keeps no training-call counter (spec/conventions.toml)")
    inner = getattr(impl, "inner", impl)
    dims = [d for d in (1, 2, 3) if impl.provides(f"BatchNorm{d}d")]
    if not dims:
        raise NotProvided(f"{impl.name} provides no BatchNormNd")
    layer = inner.batchnorm(dims[0], 2)
    if op == "reset":
        layer.reset_running_stats()
        layer.reset_parameters()
    else:
        state = layer.state()
        # a layer without the counter its convention keeps fails BN-TRAIN-05/counter-exists elsewhere; its
        # loads are still exercised here, with what it holds
        layer.load_state({k: state[k] for k in FLOATS + ("num_batches_tracked",) if state[k] is not None},
                         legacy=False)


@pytest.mark.clause(*CORE)
def test_sequences(impl):
    """Random sequences of mode changes, forward and backward calls, dtype conversions and copies against the
    float64 model; every output and parameter and buffer compared after every step."""
    _run(impl, frozenset())


@pytest.mark.clause(*CORE, "BN-LOAD-01")
def test_sequences_with_checkpoints(impl):
    """The core sequence with checkpoints loaded in the forms users produce: state_dict(), a legacy state, a plain
    dict, a non-strict load without the counter (BN-LOAD-01 (a), (b), (d), (e); (f), a plain dict without
    the counter, is test_batchnorm_family.py's, where the class is known to have a legacy format)."""
    _require(impl, "load")
    _run(impl, frozenset({"load"}))


@pytest.mark.clause(*CORE, "BN-RESET-01")
def test_sequences_with_resets(impl):
    """The core sequence with reset_running_stats() / reset_parameters() in either mode (BN-RESET-01)."""
    _require(impl, "reset")
    _run(impl, frozenset({"reset"}))


def _not_provided_here(e: NotProvided) -> None:
    """An operation the implementation does not provide, met by a grid case: noted with the test (the report
    lists it, and it excuses the conditions the case would have run), the other cases go on."""
    ctx = ph.context()
    ctx.not_provided[str(e)] = ctx.not_provided.get(str(e), 0) + 1


@pytest.mark.clause("BN-DTYPE-01", "BN-DTYPE-02", "BN-STATE-01", "BN-TRAIN-05")
@pytest.mark.parametrize("rank", sorted(GRID_SHAPES))
def test_conversions_and_copies_on_every_kind(impl, rank):
    """The sequences' convert and copy steps on a fixed case per rank: a layer after one training call (counter
    1, statistics of its own) converted to every dtype it expresses (.half(), .bfloat16(), .double(), .float()),
    each from a fresh twin of that state, holds its values rounded to the dtype bitwise, its counter, and
    everything in the new dtype (BN-DTYPE-01/02 converted-state, stats-dtype; BN-TRAIN-05 counter-dtype); a copy
    of it by each way (state round trip, deepcopy, pickle) holds the same values, counter and mode (BN-STATE-01).
    In the sequences these steps come by chance of hypothesis's rule choices (BN-DTYPE-01/converted-state was
    missed on a kind about 1 run in 1,000, BN-DTYPE-02 rests on the rule order of hypothesis's first example):
    this grid runs them on every kind in every profile (per-condition coverage)."""
    conv = conventions.of(impl)
    dims = grid_dims(impl, rank, affine=True)
    kind = f"BatchNorm{dims}d"

    def trained() -> TracedLayer:
        case = build_case(impl, dims, GRID_SHAPES[rank], eps=1e-5, momentum=0.1, affine=True, track=True,
                          dtype="float32", layout="contiguous", seed=500 + rank)
        case.layer.train(True)
        case.layer.forward(case.x, dtype="float32")
        return case.layer

    for dtype in ("float16", "bfloat16", "float64", "float32"):
        if not impl.expresses(kind, dtype=dtype, param_dtype=dtype):
            continue
        layer = trained()
        before = layer.state()
        what = f"{kind}(affine=True) after one training call in float32, then converted to {dtype} (grid)"
        try:
            layer.to(dtype)
        except NotProvided as e:
            _not_provided_here(e)
            continue
        clause = "BN-DTYPE-02" if dtype in LOW else "BN-DTYPE-01"
        state = layer.state()
        _exact(state, {k: None if before[k] is None else round_to(np.asarray(before[k], np.float64), dtype)
                       for k in FLOATS}, clause, "converted-state", what)
        if before["num_batches_tracked"] is not None:
            _counter_check(state["num_batches_tracked"], before["num_batches_tracked"], clause, "converted-state",
                           what)
        _check_dtypes(layer, dtype, conv, True, what)

    layer = trained()
    before = layer.state()
    for how in ("roundtrip", "deepcopy", "pickle"):
        what = f"{kind}(affine=True) after one training call in float32, copied by {how} (grid)"
        try:
            copied = _copy(layer, how)
        except NotProvided as e:
            _not_provided_here(e)
            continue
        state = copied.state()
        _exact(state, before, "BN-STATE-01", "copied-state", what)
        if before["num_batches_tracked"] is not None:
            _counter_check(state["num_batches_tracked"], before["num_batches_tracked"], "BN-STATE-01", "counter", what)
        ph.check(copied.training, "BN-STATE-01", "copied-state", f"got the copy in eval mode, expected training [{what}]",
                 severity="wrong-state")
        _check_dtypes(copied, "float32", conv, True, what)
