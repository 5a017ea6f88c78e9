"""The rest of the BatchNorm family (issue 15): resetting a layer (BN-RESET-01), loading checkpoints with
and without num_batches_tracked (BN-LOAD-01), LazyBatchNormNd (BN-LAZY-01), SyncBatchNorm in a single
process (BN-SYNC-01) and eval BatchNorm under no-gradient contexts (BN-GRAD-05).

Every operation goes through the adapter interface (dropnorm/adapters/base.py: Layer.reset_running_stats,
reset_parameters, load_state, convert_sync, forward_in; Implementation.lazy_batchnorm, sync_batchnorm),
NotProvided by default, so an implementation without them reports these clauses not-provided. The
equalities are exact: a reset layer, a lazy layer and a single-process SyncBatchNorm are the same
computation as a fresh BatchNormNd, so they must give the same bits.
"""
import functools

import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.spec import conventions
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.spec import tolerances as tol
from dropnorm.adapters import NotProvided
from dropnorm.suite.bn_setup import draw_case, provided_dims
from dropnorm.suite.traced import current_trace, Call, TracedLayer
from dropnorm.reference import batchnorm as refbn

STATS = ("running_mean", "running_var")

# ------------------------------------------------------------------------------------------------ tracing
# Every call reaches the trace (dropnorm.suite.traced), from which reproductions are written. Where the trace
# has a wrapper of its own for a call (a method of TracedLayer / Traced) it is used; otherwise the call
# is recorded through the trace's generic recorder under the interface's method name.


def _call(layer, method: str, **args):
    """layer.<method>(**args) on a traced layer, recorded."""
    if method in type(layer).__dict__:
        return getattr(layer, method)(**args)
    return layer._call(method, layer=layer.number, kind=layer.kind, **args)


def _derive(layer, method: str):
    """A new layer made from `layer` by `method` (convert_sync), recorded as roundtrip is."""
    if method in type(layer).__dict__:
        return getattr(layer, method)()
    rec = current_trace().add(Call(method, layer.number, layer.kind, {}))
    try:
        fresh = TracedLayer(getattr(layer.inner, method)(), current_trace().new_layer_number(), layer.construct_args)
    except Exception as e:
        rec.error = f"{type(e).__name__}: {e}"
        raise
    rec.result = fresh.number
    return fresh


def _build(impl, kind: str, factory: str, **kwargs):
    """A layer from one of the implementation's family factories (lazy_batchnorm, sync_batchnorm),
    recorded as a construction of `kind` (the class a reproduction constructs)."""
    if factory in type(impl).__dict__:
        return getattr(impl, factory)(**kwargs)
    return impl._construct(kind, factory, **kwargs)


def _forward_in(layer, x, context: str, dtype: str):
    layer._note_input(dtype, "contiguous")
    return _call(layer, "forward_in", x=np.asarray(x), context=context, dtype=dtype)


def _requires(probe):
    """Run `probe(implementation)` before hypothesis draws anything: it raises NotProvided (the test is
    then not provided at once, instead of after hundreds of filtered examples) when the implementation
    lacks the operation. The probe runs on the untraced implementation, on a throwaway layer."""
    def decorate(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            impl = kwargs["impl"]
            dims = [d for d in (1, 2, 3) if impl.provides(f"BatchNorm{d}d")]
            if dims:
                probe(getattr(impl, "inner", impl), dims[0])
            return test(*args, **kwargs)
        return run
    return decorate


def _probe_reset(inner, dims):
    layer = inner.batchnorm(dims, 2)
    layer.reset_running_stats()
    layer.reset_parameters()


def _probe_load(inner, dims):
    layer = inner.batchnorm(dims, 2)
    state = layer.state()
    layer.load_state({k: state[k] for k in ("weight", "bias", "num_batches_tracked") + STATS
                      if state[k] is not None}, legacy=False)  # a missing counter fails BN-TRAIN-05 elsewhere


def _probe_sync(inner, dims):
    inner.sync_batchnorm(dims, 2)
    inner.batchnorm(dims, 2).convert_sync()


def probe_shape(dims: int) -> tuple:
    """The probe input of a BatchNorm{dims}d: (N, C) for BatchNorm1d, (N, C, *spatial) with `dims`
    spatial axes for BatchNorm2d/3d (torch's BatchNorm2d takes 4-D input, BatchNorm3d 5-D)."""
    return (2, 2) + (1,) * (dims if dims > 1 else 0)


def _probe_forward_in(inner, dims):
    layer = inner.batchnorm(dims, 2)
    layer.train(False)
    layer.forward_in(np.ones(probe_shape(dims)), context="no_grad")


def _assert_same_counter(s_got, s_exp, clause, condition, what, *, report_values=True):
    """num_batches_tracked of the state s_got equals s_exp's exactly (with report_values, both values go
    into the report as observed/expected)."""
    __tracebackhide__ = True
    got, exp = s_got["num_batches_tracked"], s_exp["num_batches_tracked"]
    ph.check(got == exp, clause, condition, f"got num_batches_tracked {got!r}, expected {exp!r} [{what}]",
             observed=got if report_values else None, expected=exp if report_values else None, severity="wrong-state")


def _assert_same_running_state(s_got, s_exp, clause, condition, what, *, report_values=True):
    """The running statistics (where both states have them) and the counter of s_got equal s_exp's, bitwise."""
    __tracebackhide__ = True
    for key in STATS:
        if s_exp[key] is not None and s_got[key] is not None:
            ph.assert_equal(s_got[key], s_exp[key], clause, condition, f"{key}, {what}")
    _assert_same_counter(s_got, s_exp, clause, condition, what, report_values=report_values)


def _require_counter(impl):
    conv = conventions.of(impl)
    if not conv.counter:
        raise NotProvided(f"the {conv.name} convention keeps no training-call counter (spec/conventions.toml)")
    return conv


# ------------------------------------------------------------------------------------------ BN-RESET-01
@pytest.mark.clause("BN-RESET-01")
@_requires(_probe_reset)
@hh.given(data=st.data())
def test_reset_restores_a_fresh_layer(impl, data):
    """After 1-3 training calls, reset_running_stats() sets running_mean 0, running_var 1,
    num_batches_tracked 0 exactly and keeps weight and bias; reset_parameters() also sets weight 1 and
    bias 0. Afterwards two training calls and an eval call give the same output and state, bit for bit,
    as on a fresh layer with the same constructor arguments (and, after reset_running_stats, the same
    weight and bias): with momentum=None a counter left behind would weigh the first batch by 1/(t+1)."""
    _require_counter(impl)
    case = draw_case(impl, data, layouts=False, large=False)
    which = data.draw(st.sampled_from(["reset_running_stats", "reset_parameters"]), label="reset")
    steps = data.draw(st.integers(1, 3), label="training calls before the reset")
    c = case.shape[1]
    case.layer.train(True)
    for step in range(steps):
        case.layer.forward(inputs.channels(case.seed + 10 + step, case.shape, case.dtype), dtype=case.dtype)
    before = case.layer.state()
    _call(case.layer, which)
    after = case.layer.state()
    fresh = refbn.initial_state(c, affine=case.affine, track_running_stats=case.track)
    what = f"{case.describe()}, {which}() after {steps} training calls"
    if case.track:
        ph.assert_equal(after["running_mean"], fresh["running_mean"], "BN-RESET-01", "running-mean", what)
        ph.assert_equal(after["running_var"], fresh["running_var"], "BN-RESET-01", "running-var", what)
        ph.check(after["num_batches_tracked"] == 0, "BN-RESET-01", "counter",
                 f"got num_batches_tracked {after['num_batches_tracked']!r}, expected 0 [{what}]",
                 observed=after["num_batches_tracked"], expected=0, severity="wrong-state")
    if case.affine and which == "reset_parameters":
        ph.assert_equal(after["weight"], fresh["weight"], "BN-RESET-01", "weight", what)
        ph.assert_equal(after["bias"], fresh["bias"], "BN-RESET-01", "bias", what)
    elif case.affine:
        ph.assert_equal(after["weight"], before["weight"], "BN-RESET-01", "parameters-kept", f"weight, {what}")
        ph.assert_equal(after["bias"], before["bias"], "BN-RESET-01", "parameters-kept", f"bias, {what}")
    # a fresh layer: the same constructor arguments (and the parameters a correct reset_running_stats keeps)
    twin = impl.batchnorm(case.dims, c, eps=case.eps, momentum=case.momentum, affine=case.affine,
                          track_running_stats=case.track)
    if case.param_dtype == "float64":
        twin.to("float64")
    if case.affine and which == "reset_running_stats":
        twin.load(weight=before["weight"], bias=before["bias"])
    for call, mode in enumerate((True, True, False)):
        x = inputs.channels(case.seed + 20 + call, case.shape, case.dtype)
        case.layer.train(mode)
        twin.train(mode)
        got = case.layer.forward(x, dtype=case.dtype)
        expected = twin.forward(x, dtype=case.dtype)
        step = f"{what}; call {call + 1} after the reset ({'training' if mode else 'eval'}) against a fresh layer"
        ph.assert_equal(got.y, expected.y, "BN-RESET-01", "fresh-output", step)
        _assert_same_running_state(case.layer.state(), twin.state(), "BN-RESET-01", "fresh-state", step)


@pytest.mark.clause("BN-RESET-01")
@_requires(_probe_reset)
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_reset_parameters_on_every_kind(impl, dims):
    """The drawn test above on a fixed case per kind, so that its weight and bias conditions run on every kind
    whatever the draws (per-condition coverage): an affine layer with loaded weight and bias, one training
    call, reset_parameters(): weight 1 and bias 0 exactly, the running statistics and counter reset too;
    reset_running_stats() on a twin keeps the loaded weight and bias."""
    _require_counter(impl)
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    c, shape = 3, {1: (4, 3), 2: (2, 3, 2, 2), 3: (2, 3, 2, 1, 2)}[dims]
    weight, bias = inputs.vector(dims + 1, c, "float32", loc=1.0), inputs.vector(dims + 2, c, "float32", scale=2.0)
    fresh = refbn.initial_state(c, affine=True, track_running_stats=True)
    for which in ("reset_parameters", "reset_running_stats"):
        layer = impl.batchnorm(dims, c)
        layer.load(weight=weight, bias=bias)
        layer.train(True)
        layer.forward(inputs.channels(dims, shape, "float32"))
        _call(layer, which)
        after = layer.state()
        what = f"BatchNorm{dims}d({c}) with loaded weight and bias, {which}() after one training call"
        if which == "reset_parameters":
            ph.assert_equal(after["weight"], fresh["weight"], "BN-RESET-01", "weight", what)
            ph.assert_equal(after["bias"], fresh["bias"], "BN-RESET-01", "bias", what)
        else:
            ph.assert_equal(after["weight"], weight, "BN-RESET-01", "parameters-kept", f"weight, {what}")
            ph.assert_equal(after["bias"], bias, "BN-RESET-01", "parameters-kept", f"bias, {what}")
        ph.assert_equal(after["running_mean"], fresh["running_mean"], "BN-RESET-01", "running-mean", what)
        ph.assert_equal(after["running_var"], fresh["running_var"], "BN-RESET-01", "running-var", what)
        ph.check(after["num_batches_tracked"] == 0, "BN-RESET-01", "counter",
                 f"got num_batches_tracked {after['num_batches_tracked']!r}, expected 0 [{what}]",
                 observed=after["num_batches_tracked"], expected=0, severity="wrong-state")


# ------------------------------------------------------------------------------------------- BN-LOAD-01
@pytest.mark.clause("BN-LOAD-01")
@_requires(_probe_load)
@hh.given(data=st.data())
def test_loading_checkpoints_with_and_without_the_counter(impl, data):
    """A checkpoint loaded through the framework's own strict loader (torch: load_state_dict), into a
    layer with momentum=None after 0-3 training calls. In the current format it holds every value
    (the counter t too): the layer then holds exactly those values and counter t. In the legacy format
    (torch: state-dict version 1, from before num_batches_tracked) it has no counter: it loads, the values
    are exact and the counter is the layer's own, unchanged (pytorch/pytorch#110850). Either way the
    next training call continues the cumulative average from that counter: rm' = (t rm + mu)/(t + 1),
    within the bounds of BN-TRAIN-04 (dropnorm/spec/tolerances.py bn_running, m = 1/(t + 1)). A current-format
    checkpoint without the counter is incomplete: the strict load raises an error naming
    num_batches_tracked."""
    conv = _require_counter(impl)
    if not conv.cumulative_average:
        raise NotProvided(f"the {conv.name} convention has no momentum=None (cumulative average)")
    case = draw_case(impl, data, track=True, momentum=None, layouts=False, large=False)
    c = case.shape[1]
    steps = data.draw(st.integers(0, 3), label="training calls before the load")
    values = {"running_mean": inputs.vector(case.seed + 20, c, "float32", scale=2.0),
              "running_var": inputs.vector(case.seed + 21, c, "float32", positive=True)}
    if case.affine:
        values["weight"] = inputs.vector(case.seed + 22, c, "float32", loc=1.0)
        values["bias"] = inputs.vector(case.seed + 23, c, "float32", scale=2.0)
    counter = data.draw(st.integers(0, 10 ** 6), label="num_batches_tracked saved")
    current = dict(values, num_batches_tracked=counter)

    # a current-format checkpoint without the counter: incomplete, the strict load must say so
    probe = case.fresh(impl)
    try:
        _call(probe, "load_state", values=dict(values), legacy=False)
        raised = None
    except NotProvided:
        raise
    except Exception as e:  # noqa: BLE001 - any clear error is right; which one is observed
        raised = f"{type(e).__name__}: {e}"
    ph.check(raised is not None and "num_batches_tracked" in raised, "BN-LOAD-01", "missing-counter",
             f"a strict load of a current-format state without num_batches_tracked "
             f"{'raised ' + repr(raised[:300]) if raised else 'returned'}, expected an error naming "
             f"num_batches_tracked [{case.describe()}]", observed=raised, expected="an error naming num_batches_tracked", severity="wrong-state")

    # The two forms users make of a state dict (Layer.load_checkpoint), on fresh layers whose own counter is
    # k > 0 (so a loader that zeroes the counter shows): a plain dict without the framework's metadata (a dict
    # comprehension over state_dict()) loaded strictly holds the saved counter; the current format without
    # the counter loaded non-strictly keeps the layer's own k. Every example runs both, so the conditions run
    # on every kind (per-condition coverage) rather than where a sequence of the stateful test drew them.
    k = data.draw(st.integers(1, 5), label="counter of the layer loaded into")
    for form, given, expected in (("plain", current, None), ("partial", values, k)):
        other = case.fresh(impl)
        other.load(num_batches_tracked=k)
        try:
            _call(other, "load_checkpoint", values=dict(given), form=form)
        except NotProvided:
            continue  # the framework has no such form (recorded with the sequences test)
        except Exception as e:  # noqa: BLE001
            ph.check(False, "BN-LOAD-01", "loads", f"loading a {form} checkpoint raised {type(e).__name__}: "
                     f"{str(e)[:300]} [{case.describe()}]", severity="exception")
            continue
        t = int(given["num_batches_tracked"]) if expected is None else expected
        got = other.state()
        ph.check(got["num_batches_tracked"] == t, "BN-LOAD-01", f"{form}-counter",
                 f"got num_batches_tracked {got['num_batches_tracked']!r} after loading a {form} checkpoint into a "
                 f"layer with counter {k}, expected {t} [{case.describe()}]", observed=got["num_batches_tracked"],
                 expected=t, severity="wrong-state")

    # Both formats in every example, each into a layer after the same training calls (a drawn format left the
    # other's conditions unrun on a kind in 1 of 4 quick runs: per-condition coverage).
    for legacy in (False, True):
        _load_and_continue(impl, case, case.layer if not legacy else case.fresh(impl), steps, values,
                           values if legacy else current, legacy)


def _load_and_continue(impl, case, layer, steps: int, values: dict, saved: dict, legacy: bool) -> None:
    """BN-LOAD-01 for one checkpoint format: `steps` training calls, the strict load of `saved`, the values and
    the counter it leaves, and the next training call continuing the cumulative average from that counter."""
    layer.train(True)
    for step in range(steps):
        layer.forward(inputs.channels(case.seed + 10 + step, case.shape, case.dtype), dtype=case.dtype)
    t_before = layer.state()["num_batches_tracked"]
    what = (f"{case.describe()}, {steps} training calls, then a {'legacy' if legacy else 'current'}-format "
            f"checkpoint loaded")
    try:
        _call(layer, "load_state", values=saved, legacy=legacy)
    except NotProvided:
        raise
    except Exception as e:  # noqa: BLE001
        ph.check(False, "BN-LOAD-01", "legacy-loads" if legacy else "loads",
                 f"the strict load raised {type(e).__name__}: {str(e)[:300]} [{what}]", severity="exception")
        return
    ph.held("BN-LOAD-01", "legacy-loads" if legacy else "loads")
    state = layer.state()
    for key, value in values.items():
        ph.assert_equal(state[key], value, "BN-LOAD-01", "values", f"{key} after the load, {what}")
    t = refbn.counter_after_load(t_before, saved, legacy=legacy)
    whose = "the layer's own counter before the load" if legacy else "the saved counter"
    ph.check(state["num_batches_tracked"] == t, "BN-LOAD-01", "legacy-counter" if legacy else "counter",
             f"got num_batches_tracked {state['num_batches_tracked']!r} after the load, expected {t} ({whose}) "
             f"[{what}]", observed=state["num_batches_tracked"], expected=t, severity="wrong-state")

    if legacy:
        _check_plain_dict_without_counter(impl, case, values, what)

    x = inputs.channels(case.seed + 30, case.shape, case.dtype)
    layer.forward(x, dtype=case.dtype)
    rm, rv, _ = ref.running_update(values["running_mean"], values["running_var"], t, x, None)
    d_rm, d_rv = tol.bn_running(x, values["running_mean"], values["running_var"], 1.0 / (t + 1), case.dtype,
                                case.param_dtype)
    state = layer.state()
    step = f"{what}; the next training call, m = 1/{t + 1}"
    ph.assert_close(state["running_mean"], rm, d_rm, "BN-LOAD-01", "cma-continues", f"running_mean, {step}")
    ph.assert_close(state["running_var"], rv, d_rv, "BN-LOAD-01", "cma-continues", f"running_var, {step}")


def _check_plain_dict_without_counter(impl, case, values, what) -> None:
    """BN-LOAD-01 (f), for a class that has a legacy (pre-counter) format (the legacy load above succeeded): a
    plain dict (no format metadata: torch's dict comprehension over state_dict()) without num_batches_tracked
    carries no version, so it reads as a legacy state: the strict load succeeds, the values are exact and the
    counter is the layer's own (torch 2.13.0; a state_dict() OrderedDict without it raises, (c), checked above
    as missing-counter). The layer gets a counter of its own first (one training call), so that keeping it is
    told from resetting it."""
    probe = case.fresh(impl)
    probe.train(True)
    probe.forward(case.x, dtype=case.dtype)
    own = probe.state()["num_batches_tracked"]
    step = f"{what}; a plain dict without num_batches_tracked into a layer with counter {own}"
    try:
        _call(probe, "load_checkpoint", values=dict(values), form="plain")
    except NotProvided:  # no way to pass a plain dict: (f) is not judged here
        return
    except Exception as e:  # noqa: BLE001
        ph.check(False, "BN-LOAD-01", "loads", f"the strict load of a plain dict without the counter raised "
                 f"{type(e).__name__}: {str(e)[:300]} [{step}]", severity="exception")
        return
    ph.held("BN-LOAD-01", "loads")
    state = probe.state()
    for key, value in values.items():
        ph.assert_equal(state[key], value, "BN-LOAD-01", "values", f"{key}, {step}")
    ph.check(state["num_batches_tracked"] == own, "BN-LOAD-01", "plain-counter",
             f"got num_batches_tracked {state['num_batches_tracked']!r}, expected the layer's own {own} [{step}]",
             observed=state["num_batches_tracked"], expected=own, severity="wrong-state")


# ------------------------------------------------------------------------------------------- BN-LAZY-01
@pytest.mark.clause("BN-LAZY-01")
@_requires(lambda inner, dims: inner.lazy_batchnorm(dims))
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_lazy_initial_values_on_every_kind(impl, dims):
    """The drawn test below on a fixed case per kind, so that initial-values runs on every kind whatever the
    draws (per-condition coverage): LazyBatchNormNd() materialised by a first call in eval holds weight 1,
    bias 0, running_mean 0, running_var 1 and counter 0, with C values each."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    c, shape = 3, {1: (4, 3), 2: (2, 3, 2, 2), 3: (2, 3, 2, 1, 2)}[dims]
    lazy = _build(impl, f"LazyBatchNorm{dims}d", "lazy_batchnorm", dims=dims)
    lazy.train(False)
    lazy.forward(inputs.channels(dims, shape, "float32"))
    got, fresh = lazy.state(), refbn.initial_state(c, affine=True, track_running_stats=True)
    step = f"LazyBatchNorm{dims}d() after a first call in eval on {shape}"
    for key in ("weight", "bias") + STATS:
        ph.check(np.shape(got[key]) == (c,), "BN-LAZY-01", "shape", f"got {key} of shape {np.shape(got[key])}, "
                 f"expected ({c},) [{step}]", observed=np.shape(got[key]), expected=(c,), severity="wrong-state")
        if np.shape(got[key]) == (c,):
            ph.assert_equal(got[key], fresh[key], "BN-LAZY-01", "initial-values", f"{key}, {step}")
    ph.check(got["num_batches_tracked"] in (0, None), "BN-LAZY-01", "initial-values",
             f"got num_batches_tracked {got['num_batches_tracked']!r}, expected 0 after an eval call [{step}]",
             observed=got["num_batches_tracked"], expected=0, severity="wrong-state")


@pytest.mark.clause("BN-LAZY-01")
@_requires(lambda inner, dims: inner.lazy_batchnorm(dims))
@hh.given(data=st.data())
def test_lazy_batchnorm_is_the_eager_one(impl, data):
    """LazyBatchNormNd(eps, momentum, affine, track_running_stats) takes num_features from its first
    input and is then BatchNormNd(C) with the same keywords, bit for bit: the outputs, parameters,
    running statistics and counter after a first call (training or eval), a second call in training
    and an eval call; its parameters and buffers have C values, initialised to weight 1, bias 0,
    running_mean 0, running_var 1, counter 0. BN-LAZY-01, stateless form: with affine=False and
    track_running_stats=False (torch keeps num_features 0) a later input with another channel count
    raises in both or gives the same output."""
    dims = data.draw(st.sampled_from(provided_dims(impl)), label="dims")
    kind = f"BatchNorm{dims}d"
    shape = data.draw(hh.bn_shapes(dims), label="shape")
    c = shape[1]
    eps = data.draw(hh.eps_values(), label="eps")
    momentum = data.draw(hh.momenta(allow_none=impl.expresses(kind, momentum=None)), label="momentum")
    affine = data.draw(hh.expressed(impl, kind, "affine", (True, False)), label="affine")
    track = data.draw(hh.expressed(impl, kind, "track_running_stats", (True, False)), label="track_running_stats")
    allowed = [d for d in ("float32", "float16", "bfloat16") if impl.expresses(kind, dtype=d, param_dtype="float32")]
    if not allowed:
        raise NotProvided(f"{impl.name}: {kind} expresses none of float32, float16, bfloat16")
    dtype = data.draw(hh.dtypes(allowed), label="dtype")
    seed = data.draw(hh.seeds(), label="seed")
    first = data.draw(st.booleans(), label="first call in training")
    kw = dict(eps=eps, momentum=momentum, affine=affine, track_running_stats=track)
    lazy = _build(impl, f"LazyBatchNorm{dims}d", "lazy_batchnorm", dims=dims, **kw)
    eager = impl.batchnorm(dims, c, **kw)
    fresh = refbn.initial_state(c, affine=affine, track_running_stats=track)
    what = f"Lazy{kind}(eps={eps:.3g}, momentum={momentum}, affine={affine}, track_running_stats={track}), x {shape} {dtype}"
    for call, (x_seed, mode) in enumerate(((seed, first), (seed + 1, True), (seed, False))):
        x = inputs.channels(x_seed, shape, dtype)
        lazy.train(mode)
        eager.train(mode)
        got = lazy.forward(x, dtype=dtype)
        expected = eager.forward(x, dtype=dtype)
        step = f"{what}; call {call + 1} ({'training' if mode else 'eval'}) against {kind}({c})"
        ph.assert_equal(got.y, expected.y, "BN-LAZY-01", "output", step)
        s_got, s_exp = lazy.state(), eager.state()
        for key, condition in (("weight", "parameters"), ("bias", "parameters"), ("running_mean", "running-mean"),
                               ("running_var", "running-var")):
            if s_exp[key] is None or s_got[key] is None:
                ph.check(s_got[key] is None and s_exp[key] is None, "BN-LAZY-01", condition,
                         f"got {key} {s_got[key]!r}, expected {s_exp[key]!r} [{step}]", severity="wrong-state")
                continue
            ph.check(np.shape(s_got[key]) == (c,), "BN-LAZY-01", "shape",
                     f"got {key} of shape {np.shape(s_got[key])}, expected ({c},) [{step}]",
                     observed=np.shape(s_got[key]), expected=(c,), severity="wrong-state")
            if np.shape(s_got[key]) == (c,):
                ph.assert_equal(s_got[key], s_exp[key], "BN-LAZY-01", condition, f"{key}, {step}")
                # materialised as a fresh layer: parameters at their initial values until trained, and
                # the running statistics too when the first call was in eval
                if call == 0 and (key in ("weight", "bias") or not first):
                    ph.assert_equal(s_got[key], fresh[key], "BN-LAZY-01", "initial-values", f"{key}, {step}")
        _assert_same_counter(s_got, s_exp, "BN-LAZY-01", "counter", step)
    if affine or track:
        return
    # nothing was materialised (torch 2.13.0 keeps num_features 0): like the eager stateless layer (BN-API-03),
    # a later input with another channel count raises in both or computes the same in both
    other = (shape[0], c + 1) + tuple(shape[2:])
    x = inputs.channels(seed + 2, other, dtype)
    results = []
    for layer in (lazy, eager):
        layer.train(True)
        try:
            results.append(layer.forward(x, dtype=dtype).y)
        except NotProvided:
            raise
        except Exception as e:  # noqa: BLE001 - whether it raises is compared, not judged
            results.append(f"{type(e).__name__}")
    step = f"{what}; a later training call on {other} (another channel count) against {kind}({c})"
    if isinstance(results[0], str) or isinstance(results[1], str):
        ph.check(isinstance(results[0], str) and isinstance(results[1], str), "BN-LAZY-01", "output",
                 f"got {results[0] if isinstance(results[0], str) else 'an output'}, expected "
                 f"{results[1] if isinstance(results[1], str) else 'an output'} [{step}]", severity="wrong-state")
    else:
        ph.assert_equal(results[0], results[1], "BN-LAZY-01", "output", step)


# ------------------------------------------------------------------------------------------- BN-SYNC-01
@pytest.mark.clause("BN-SYNC-01")
@_requires(_probe_sync)
@hh.given(data=st.data())
def test_sync_batchnorm_in_one_process(impl, data):
    """SyncBatchNorm in a single process without a process group: in eval it is BatchNormNd with the same
    state, bit for bit; in training it either equals BatchNormNd (output, running statistics, counter,
    bit for bit: a world of size 1) or raises ValueError or RuntimeError with a message, never another
    result. convert_sync_batchnorm of a BatchNormNd carries its weight, bias, running statistics,
    counter and mode exactly, and the converted layer's eval output is the original's."""
    case = draw_case(impl, data, layouts=False, large=False)
    c = case.shape[1]
    sync = _build(impl, "SyncBatchNorm", "sync_batchnorm", dims=case.dims, num_features=c, eps=case.eps,
                  momentum=case.momentum, affine=case.affine, track_running_stats=case.track)
    if case.param_dtype == "float64":
        sync.to("float64")
    if case.affine:
        sync.load(weight=case.weight, bias=case.bias)
    if case.track:
        sync.load(running_mean=case.running_mean, running_var=case.running_var)
    what = f"SyncBatchNorm in one process against {case.describe()}"
    case.layer.train(False)
    sync.train(False)
    ph.assert_equal(sync.forward(case.x, dtype=case.dtype).y, case.layer.forward(case.x, dtype=case.dtype).y,
                    "BN-SYNC-01", "eval-output", f"{what}, eval")
    # any rank >= 2, (N, C, *), which no single BatchNormNd reads: against the reference, in eval (batch
    # statistics where the layer keeps no running ones), within the bound of BN-EVAL-01 / BN-TRAIN-01
    for rank in (2, 3, 4, 5, 6):
        x = inputs.channels(case.seed + 40 + rank, (3, c) + (2,) * (rank - 2), case.dtype)
        at = f"{what}, eval, x {x.shape} {case.dtype}"
        try:
            got = sync.forward(x, dtype=case.dtype)
        except NotProvided:
            raise
        except Exception as e:  # noqa: BLE001
            ph.check(False, "BN-SYNC-01", "any-rank", f"got {type(e).__name__}: {str(e)[:200]}, expected an output "
                     f"for rank {rank} [{at}]", severity="exception")
            continue
        if case.track:
            exp = ref.batchnorm_eval_forward(x, case.running_mean, case.running_var, case.weight, case.bias, case.eps)
            bound = tol.bn_eval_output(x, case.running_mean, case.running_var, case.weight, case.bias, case.eps,
                                       case.dtype)
        else:
            exp = ref.batchnorm_train_forward(x, case.weight, case.bias, case.eps)
            bound, _ = tol.bn_train_output(x, case.weight, case.bias, case.eps, case.dtype)
        ph.assert_close(got.y, exp, bound, "BN-SYNC-01", "any-rank", at)

    case.layer.train(True)
    sync.train(True)
    expected = case.layer.forward(case.x, dtype=case.dtype)
    try:
        got = sync.forward(case.x, dtype=case.dtype)
    except NotProvided:
        raise
    except Exception as e:  # noqa: BLE001 - a clear error is allowed; which one is the observation
        ph.check(isinstance(e, (ValueError, RuntimeError)) and bool(str(e).strip()), "BN-SYNC-01", "clear-error",
                 f"training raised {type(e).__name__}: {str(e)[:300]!r}, expected the BatchNorm result or a "
                 f"ValueError/RuntimeError saying why [{what}, training]", severity="exception")
        got = None
    if got is not None:
        ph.held("BN-SYNC-01", "clear-error")  # the result, so no unclear error
        ph.assert_equal(got.y, expected.y, "BN-SYNC-01", "train-output", f"{what}, training")
        _assert_same_running_state(sync.state(), case.layer.state(), "BN-SYNC-01", "train-state", f"{what}, training",
                                   report_values=False)

    # conversion of a layer with a history: trained 0-2 times, in either mode
    source = case.fresh(impl)
    source.train(True)
    for step in range(data.draw(st.integers(0, 2), label="training calls before the conversion")):
        source.forward(inputs.channels(case.seed + 10 + step, case.shape, case.dtype), dtype=case.dtype)
    source.train(data.draw(st.booleans(), label="mode at the conversion"))
    s_src, mode = source.state(), source.training
    converted = _derive(source, "convert_sync")
    s_conv = converted.state()
    conv_what = f"convert_sync_batchnorm of {case.describe()}"
    for key in ("weight", "bias") + STATS:
        if s_src[key] is None or s_conv[key] is None:
            ph.check(s_src[key] is None and s_conv[key] is None, "BN-SYNC-01", "converted-state",
                     f"got {key} {s_conv[key]!r}, expected {s_src[key]!r} [{conv_what}]", severity="wrong-state")
        else:
            ph.assert_equal(s_conv[key], s_src[key], "BN-SYNC-01", "converted-state", f"{key}, {conv_what}")
    _assert_same_counter(s_conv, s_src, "BN-SYNC-01", "converted-state", conv_what)
    ph.check(converted.training == mode, "BN-SYNC-01", "converted-mode",
             f"got training={converted.training}, expected {mode} [{conv_what}]", severity="wrong-state")
    source.train(False)
    converted.train(False)
    ph.assert_equal(converted.forward(case.x, dtype=case.dtype).y, source.forward(case.x, dtype=case.dtype).y,
                    "BN-SYNC-01", "converted-output", f"{conv_what}, eval")


# ------------------------------------------------------------------------------------------- BN-GRAD-05
@pytest.mark.clause("BN-GRAD-05")
@_requires(_probe_forward_in)
@hh.given(data=st.data())
def test_eval_under_no_gradient_contexts(impl, data):
    """Eval BatchNorm of an input that requires gradients, inside torch.no_grad() and
    torch.inference_mode() (Layer.forward_in): the output is bitwise the differentiable forward's. Under
    no_grad it is attached to no graph (the input gets no gradient through it) and is usable afterwards
    as a constant; under inference_mode it is an inference tensor, and the use BN-GRAD-05 checks, the
    product y * w with w requiring gradients (whose backward must save y), raises RuntimeError (y + w,
    whose backward saves nothing, does not on torch 2.13.0 and is not checked). The gradient of the differentiable eval forward itself,
    dx = gamma / sqrt(rv + eps) dy, is BN-GRAD-03's (test_batchnorm_grad.py)."""
    case = draw_case(impl, data, min_n=1, track=True, layouts=False, large=False)
    case.layer.train(False)
    dy = inputs.channels(case.seed + 5, case.shape, case.dtype)
    plain = case.layer.forward_backward(case.x, dy, dtype=case.dtype)
    for context, output_condition in (("no_grad", "no-grad-output"), ("inference_mode", "inference-output")):
        out = _forward_in(case.layer, case.x, context, case.dtype)
        what = f"{case.describe()}, eval under {context}"
        ph.assert_equal(out.y, plain.y, "BN-GRAD-05", output_condition, f"{what} against the differentiable forward")
        extra = out.extra
        if context == "no_grad":
            ph.check(not extra["requires_grad"] and not extra["input_grad"], "BN-GRAD-05", "no-grad-graph",
                     f"the output requires_grad={extra['requires_grad']}, the input received a gradient: "
                     f"{extra['input_grad']}; expected no graph [{what}]", severity="wrong-state")
            ph.check(extra["autograd_error"] is None, "BN-GRAD-05", "no-grad-usable",
                     f"using the output in a recorded computation raised {extra['autograd_error']!r} [{what}]", severity="exception")
        else:
            ph.check(extra["inference"], "BN-GRAD-05", "inference-tensor",
                     f"the output is not an inference tensor [{what}]", severity="wrong-state")
            error = extra["autograd_error"] or ""
            ph.check(error.startswith("RuntimeError: ") and len(error) > len("RuntimeError: "), "BN-GRAD-05",
                     "inference-autograd-error",
                     f"using the output in a recorded computation {'raised ' + repr(error[:300]) if error else 'did not raise'}"
                     f", expected a RuntimeError saying why [{what}]", observed=error or None,
                     expected="RuntimeError", severity="invalid-accepted")
