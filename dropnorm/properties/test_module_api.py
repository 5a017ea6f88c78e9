"""The module API that torch.nn users rely on beyond the values (issue 24): the keys of the saved state
(BN-KEYS-01), the output's memory format (DO-FORMAT-01, D2-FORMAT-01, BN-FORMAT-01), track_running_stats
switched off after construction (BN-TOGGLE-01), a momentum given as a tensor (BN-MOMTENSOR-01), an in-place
Dropout under autograd (DO-INPLACE-03) and the deterministic-algorithms mode (BN-DETERMINISTIC-01).

Every operation goes through the adapter interface (dropnorm/adapters/base.py: Layer.state_keys,
output_format, set_tracking, inplace_autograd, forward_backward_deterministic; Implementation.
batchnorm_momentum_tensor), NotProvided by default, and through the trace (dropnorm/suite/traced.py), from which
reproductions are written (dropnorm/suite/reproduce.py). An implementation without them (the reference, the other
frameworks, torch's execution paths) reports these clauses not provided; each test probes the operation once
before hypothesis draws anything, so that it is not provided at once instead of after hundreds of filtered
examples.
"""
import functools

import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm.suite import checks as ph
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.spec import tolerances as tol
from dropnorm.adapters import NotProvided
from dropnorm.suite.bn_setup import draw_case, provided_dims
from dropnorm.spec.kinds import CHANNEL_KINDS, spatial_dims
from dropnorm.properties._family import construct, provided

STATS = ("running_mean", "running_var")
FORMAT_RANKS = (4, 5)  # the ranks with a channels-last memory format (torch.channels_last, channels_last_3d)


def _requires(probe, kinds):
    """Run `probe(implementation, kind)` on the untraced implementation, for the first of `kinds` it provides,
    before hypothesis draws anything: it raises NotProvided where the implementation lacks the operation."""
    def decorate(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            impl = kwargs["impl"]
            provided_kinds = [k for k in kinds if impl.provides(k)]
            if provided_kinds:
                probe(getattr(impl, "inner", impl), provided_kinds[0])
            return test(*args, **kwargs)
        return run
    return decorate


def _layer(inner, kind, **kwargs):
    if kind.startswith("BatchNorm"):
        return inner.batchnorm(int(kind[9]), 2, **kwargs)
    return getattr(inner, {"Dropout": "dropout", "Dropout1d": "dropout1d", "Dropout2d": "dropout2d",
                           "Dropout3d": "dropout3d"}[kind])(**kwargs)


BN_KINDS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")


def _probe_shape(kind):
    if kind.startswith("BatchNorm"):
        return (2, 2) + (2,) * (int(kind[9]) if kind != "BatchNorm1d" else 0)
    if kind == "Dropout":
        return (2, 2)
    return (2, 2) + (2,) * spatial_dims(kind)


def _load_case_state(layer, case):
    """The case's dtype and state (case.fresh's loading) on a layer built by another factory."""
    if case.param_dtype == "float64":
        layer.to("float64")
    if case.affine:
        layer.load(weight=case.weight, bias=case.bias)
    if case.track:
        layer.load(running_mean=case.running_mean, running_var=case.running_var)
    return layer


def _assert_same_state(got, exp, clause, condition, what):
    __tracebackhide__ = True
    for key in STATS:
        if exp[key] is not None or got[key] is not None:
            if exp[key] is None or got[key] is None:
                ph.check(False, clause, condition, f"got {key} {got[key]!r}, expected {exp[key]!r} [{what}]",
                         severity="wrong-state")
                continue
            ph.assert_equal(got[key], exp[key], clause, condition, f"{key}, {what}")
    ph.check(got["num_batches_tracked"] == exp["num_batches_tracked"], clause, condition,
             f"got num_batches_tracked {got['num_batches_tracked']!r}, expected {exp['num_batches_tracked']!r} "
             f"[{what}]", observed=got["num_batches_tracked"], expected=exp["num_batches_tracked"],
             severity="wrong-state")


# ------------------------------------------------------------------------------------------- BN-KEYS-01
def _probe_keys(inner, kind):
    _layer(inner, kind).state_keys()


@pytest.mark.clause("BN-KEYS-01")
@_requires(_probe_keys, BN_KINDS)
@hh.given(data=st.data())
def test_state_keys_follow_the_configuration(impl, data):
    """The saved state's keys are exactly the parameters (affine) and buffers (track_running_stats) the
    configuration has, after construction and after a training call."""
    dims = data.draw(st.sampled_from(provided_dims(impl)), label="dims")
    kind = f"BatchNorm{dims}d"
    affine = data.draw(hh.expressed(impl, kind, "affine", (True, False)), label="affine")
    track = data.draw(hh.expressed(impl, kind, "track_running_stats", (True, False)), label="track_running_stats")
    c = data.draw(st.integers(1, 4), label="C")
    expected = [k for k, has in (("weight", affine), ("bias", affine), ("running_mean", track),
                                 ("running_var", track), ("num_batches_tracked", track)) if has]
    layer = impl.batchnorm(dims, c, affine=affine, track_running_stats=track)
    what = f"{kind}({c}, affine={affine}, track_running_stats={track})"
    for when in ("constructed", "after a training call"):
        if when != "constructed":
            layer.train(True)
            layer.forward(inputs.channels(1, (3, c) + (2,) * (dims if dims > 1 else 0), "float32"))
        got = list(layer.state_keys())
        ph.check(sorted(got) == sorted(expected), "BN-KEYS-01", "keys",
                 f"got state keys {got}, expected exactly {expected} [{what}, {when}]",
                 observed=got, expected=expected, severity="wrong-state")


# ----------------------------------------------------------------- DO-FORMAT-01, D2-FORMAT-01, BN-FORMAT-01
def _probe_format(inner, kind):
    _layer(inner, kind).output_format(np.ones(_probe_shape(kind)), dtype="float32", layout="contiguous")


def _check_format(layer, x, dtype: str, clause: str, what: str) -> None:
    """A contiguous input gives a contiguous output; a 4-D/5-D channels_last input a channels_last output (the
    shapes drawn have C > 1 and more than one spatial position, so the two formats differ)."""
    __tracebackhide__ = True
    layouts = ("contiguous", "channels_last") if x.ndim in FORMAT_RANKS else ("contiguous",)
    for layout in layouts:
        for training in (True, False):
            layer.train(training)
            out = layer.output_format(x, dtype=dtype, layout=layout)
            got = out.extra["format"]
            condition = "channels-last" if layout == "channels_last" else "contiguous"
            ph.check(got == layout, clause, condition,
                     f"got an output in the {got} memory format (strides {out.extra.get('strides')}), expected "
                     f"{layout} as the input [{what}, {'training' if training else 'eval'}, input {layout}]",
                     observed=got, expected=layout, severity="wrong-state")


def _format_shape(data, rank: int) -> tuple:
    """(N, C, *spatial) with C >= 2 and at least two spatial positions: contiguous and channels-last differ."""
    shape = (data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(2, 4), label="C"))
    sides = [data.draw(st.integers(1, 4 if rank < 5 else 3), label="side") for _ in range(rank - 2)]
    if sides and int(np.prod(sides)) < 2:
        sides[-1] = 2
    return shape + tuple(sides)


@pytest.mark.clause("DO-FORMAT-01")
@_requires(_probe_format, ("Dropout",))
@hh.given(data=st.data())
def test_dropout_keeps_the_memory_format(impl, data):
    """Dropout on contiguous 2-D to 5-D inputs and on 4-D/5-D channels-last inputs, in training and eval:
    the output is in the input's memory format."""
    # 4 first: hypothesis's first example is its simplest, so every run has a channels-last rank (with 2 first
    # DO-FORMAT-01/channels-last ran only by chance, missed in about 1 run in 2,000)
    rank = data.draw(st.sampled_from((4, 5, 2, 3, 4, 5)), label="rank")
    shape = _format_shape(data, rank)
    p = data.draw(hh.probabilities(0.0, 0.9), label="p")
    dtype = data.draw(hh.expressed(impl, "Dropout", "dtype", ("float32", "float64")), label="dtype")
    seed = data.draw(hh.seeds(), label="seed")
    layer = construct(impl, "Dropout", p=p)
    impl.seed(seed)
    _check_format(layer, inputs.nonzero(seed, shape, dtype), dtype, "DO-FORMAT-01", f"Dropout(p={p}), {shape}, {dtype}")


@pytest.mark.clause("D2-FORMAT-01")
@_requires(_probe_format, CHANNEL_KINDS)
@hh.given(data=st.data())
def test_channel_dropout_keeps_the_memory_format(impl, data):
    """Dropout1d/2d/3d on their batched rank, contiguous and (2d, 3d) channels-last, in training and eval: the
    output is in the input's memory format."""
    kind = data.draw(st.sampled_from(provided(impl, CHANNEL_KINDS)), label="kind")
    shape = _format_shape(data, spatial_dims(kind) + 2)
    p = data.draw(hh.probabilities(0.0, 0.9), label="p")
    dtype = data.draw(hh.expressed(impl, kind, "dtype", ("float32", "float64")), label="dtype")
    seed = data.draw(hh.seeds(), label="seed")
    layer = construct(impl, kind, p=p)
    impl.seed(seed)
    _check_format(layer, inputs.nonzero(seed, shape, dtype), dtype, "D2-FORMAT-01", f"{kind}(p={p}), {shape}, {dtype}")


@pytest.mark.clause("BN-FORMAT-01")
@_requires(_probe_format, BN_KINDS)
@hh.given(data=st.data())
def test_batchnorm_keeps_the_memory_format(impl, data):
    """BatchNorm1d/2d/3d on contiguous inputs, BatchNorm2d/3d on channels-last inputs, in training and eval
    (with and without running statistics): the output is in the input's memory format."""
    case = draw_case(impl, data, layouts=False, large=False, min_c=2)
    shape = case.shape
    if case.dims > 1 and int(np.prod(shape[2:])) < 2:
        shape = shape[:-1] + (2,)
    x = inputs.channels(case.seed, shape, case.dtype)
    _check_format(case.layer, x, case.dtype, "BN-FORMAT-01", case.describe())


# ------------------------------------------------------------------------------------------ BN-TOGGLE-01
def _probe_toggle(inner, kind):
    _layer(inner, kind).set_tracking(False)


@pytest.mark.clause("BN-TOGGLE-01")
@_requires(_probe_toggle, BN_KINDS)
@hh.given(data=st.data())
def test_tracking_switched_off_after_construction(impl, data):
    """A tracking layer holding running statistics, with tracking switched off afterwards: eval normalises
    with those statistics (bitwise the tracking layer's eval output); training normalises with the batch
    statistics (bitwise the training output of a layer constructed with track_running_stats=False: torch's
    kernel that also updates running statistics rounds float16 differently) and leaves the statistics and
    the counter."""
    case = draw_case(impl, data, track=True, layouts=False, large=False)
    what = f"{case.describe()}, track_running_stats switched off after construction"
    tracking, toggled = case.fresh(impl), case.fresh(impl)
    toggled.set_tracking(False)
    for layer in (tracking, toggled):
        layer.train(False)
    ph.assert_equal(toggled.forward(case.x, dtype=case.dtype).y, tracking.forward(case.x, dtype=case.dtype).y,
                    "BN-TOGGLE-01", "eval-running-stats", f"eval output against the tracking layer's, {what}")
    before = toggled.state()
    untracked = case.fresh(impl, track_running_stats=False)
    for layer in (untracked, toggled):
        layer.train(True)
    ph.assert_equal(toggled.forward(case.x, dtype=case.dtype).y, untracked.forward(case.x, dtype=case.dtype).y,
                    "BN-TOGGLE-01", "train-batch-stats",
                    f"training output against a layer constructed with track_running_stats=False, {what}")
    _assert_same_state(toggled.state(), before, "BN-TOGGLE-01", "train-state-unchanged",
                       f"state after a training call against the state before it, {what}")


# --------------------------------------------------------------------------------------- BN-MOMTENSOR-01
def _probe_momentum_tensor(inner, kind):
    inner.batchnorm_momentum_tensor(int(kind[9]), 2, momentum=0.25)


@pytest.mark.clause("BN-MOMTENSOR-01")
@_requires(_probe_momentum_tensor, BN_KINDS)
@hh.given(data=st.data())
def test_momentum_tensor_is_its_value(impl, data):
    """BatchNormNd(momentum=tensor(m)) against BatchNormNd(momentum=m), same state: two training calls and an
    eval call give the same outputs, running statistics and counter, bit for bit."""
    momentum = data.draw(hh.momenta(allow_none=False), label="momentum")
    case = draw_case(impl, data, track=True, momentum=momentum, layouts=False, large=False)
    what = f"{case.describe()}, momentum as a float64 tensor"
    plain = case.fresh(impl)
    try:
        tensor = impl.batchnorm_momentum_tensor(case.dims, case.shape[1], eps=case.eps, momentum=momentum,
                                                affine=case.affine, track_running_stats=True)
    except NotProvided:
        raise
    except Exception as e:  # noqa: BLE001 - the refusal is the observation
        ph.check(False, "BN-MOMTENSOR-01", "accepted", f"construction raised {type(e).__name__}: {e} [{what}]",
                 severity="exception")
        return
    ph.held("BN-MOMTENSOR-01", "accepted")
    _load_case_state(tensor, case)
    for step, x in enumerate((case.x, case.another_input(case.seed + 7))):
        for layer in (plain, tensor):
            layer.train(True)
        ph.assert_equal(tensor.forward(x, dtype=case.dtype).y, plain.forward(x, dtype=case.dtype).y,
                        "BN-MOMTENSOR-01", "train-output", f"training call {step + 1}, {what}")
        _assert_same_state(tensor.state(), plain.state(), "BN-MOMTENSOR-01", "running-state",
                           f"after training call {step + 1}, {what}")
    for layer in (plain, tensor):
        layer.train(False)
    ph.assert_equal(tensor.forward(case.x, dtype=case.dtype).y, plain.forward(case.x, dtype=case.dtype).y,
                    "BN-MOMTENSOR-01", "eval-output", f"eval call, {what}")


# ----------------------------------------------------------------------------------------- DO-INPLACE-03
def _probe_inplace_autograd(inner, kind):
    _layer(inner, kind, p=0.5, inplace=True).inplace_autograd(np.ones(_probe_shape(kind)), how="scaled")


@pytest.mark.clause("DO-INPLACE-03")
@_requires(_probe_inplace_autograd, ("Dropout",))
@hh.given(data=st.data())
def test_inplace_under_autograd(impl, data):
    """Dropout(p, inplace=True) in training on an input that requires gradients: on the leaf itself it raises
    RuntimeError; on exp(x) and tanh(x) (whose backward reads their output) the backward raises RuntimeError or
    gives the true gradient (exp: y; tanh: z (1 - tanh^2 x) / (1-p)); on 2 x the backward gives 2 z / (1-p)."""
    shape = data.draw(hh.dropout_shapes(min_dims=1, max_dims=4, max_side=5), label="shape")
    _check_inplace_autograd(impl, data, "Dropout", shape, "DO-INPLACE-03")


@pytest.mark.clause("D2-INPLACE-01")
@_requires(_probe_inplace_autograd, CHANNEL_KINDS)
@hh.given(data=st.data())
def test_channel_inplace_under_autograd(impl, data):
    """As test_inplace_under_autograd for Dropout1d/2d/3d(p, inplace=True) on their batched rank."""
    kind = data.draw(st.sampled_from(provided(impl, CHANNEL_KINDS)), label="kind")
    shape = _format_shape(data, spatial_dims(kind) + 2)
    _check_inplace_autograd(impl, data, kind, shape, "D2-INPLACE-01")


def _check_inplace_autograd(impl, data, kind: str, shape: tuple, clause: str) -> None:
    """DO-INPLACE-03 / D2-INPLACE-01 on one drawn case of `kind`."""
    __tracebackhide__ = True
    if not impl.expresses(kind, inplace=True):
        raise NotProvided(f"{impl.name}: {kind}(inplace=True)")
    p = data.draw(hh.probabilities(0.1, 0.9), label="p")
    dtype = data.draw(hh.expressed(impl, kind, "dtype", ("float32", "float64")), label="dtype")
    seed = data.draw(hh.seeds(), label="seed")
    x = inputs.nonzero(seed, shape, dtype)
    layer = construct(impl, kind, p=p, inplace=True)
    layer.train(True)
    what = f"{kind}(p={p}, inplace=True), {shape}, {dtype}"
    rtol = tol.dropout_scale_rtol(dtype)

    impl.seed(seed)
    out = layer.inplace_autograd(x, how="leaf", dtype=dtype)
    err = out.extra["forward_error"] or out.extra["backward_error"]
    ph.check(bool(out.extra["forward_error"]) and out.extra["forward_error"].startswith("RuntimeError"),
             clause, "leaf-raises",
             f"an in-place training call on a leaf that requires grad gave {err or 'no error'}, expected RuntimeError "
             f"[{what}]", observed=err or "no error", expected="RuntimeError", severity="invalid-accepted")

    for how in ("exp", "tanh"):
        # exp's and tanh's backward read their saved output, which the in-place call overwrites (torch raises)
        impl.seed(seed)
        out = layer.inplace_autograd(x, how=how, dtype=dtype)
        fwd, bwd = out.extra["forward_error"], out.extra["backward_error"]
        where = f"{what}, applied to {how}(x)"
        if fwd or bwd:
            ph.check(not fwd and bwd.startswith("RuntimeError"), clause, "saved-output-raises-or-correct",
                     f"the {'forward' if fwd else 'backward'} raised {fwd or bwd}, expected the backward to raise "
                     f"RuntimeError or to give the true gradient [{where}]", severity="exception")
            continue
        # d/dx sum(z f(x) / (1-p)) = z f'(x) / (1-p): exp' = exp (= y), tanh' = 1 - tanh^2
        z = ph.read_mask(out.y) / (1.0 - p)
        true = out.y if how == "exp" else z * (1.0 - np.tanh(x) ** 2)
        atol = 64 * float(np.finfo(dtype).eps) * (np.abs(true) + z)
        ph.assert_close(out.dx, true, atol, clause, "saved-output-raises-or-correct",
                        f"dx of sum(y) against the true gradient, no error raised [{where}]")

    impl.seed(seed)
    out = layer.inplace_autograd(x, how="scaled", dtype=dtype)
    fwd, bwd = out.extra["forward_error"], out.extra["backward_error"]
    ph.check(not (fwd or bwd), clause, "scaled-gradient",
             f"raised {fwd or bwd}, expected a gradient [{what}, applied to 2 x]", severity="exception")
    if not (fwd or bwd):
        expected = np.where(ph.read_mask(out.y), 2.0 / (1.0 - p), 0.0)
        ph.assert_close(out.dx, expected, rtol * 4 * np.abs(expected), clause, "scaled-gradient",
                        f"dx of sum(y) against 2 z / (1-p) [{what}, applied to 2 x]")


# ------------------------------------------------------------------------------------ BN-DETERMINISTIC-01
def _probe_deterministic(inner, kind):
    shape = _probe_shape(kind)
    _layer(inner, kind).forward_backward_deterministic(np.arange(float(np.prod(shape))).reshape(shape),
                                                        np.ones(shape))


@pytest.mark.clause("BN-DETERMINISTIC-01")
@_requires(_probe_deterministic, BN_KINDS)
@hh.given(data=st.data())
def test_deterministic_mode_changes_nothing(impl, data):
    """A training and an eval forward and backward with the deterministic-algorithms mode on equal those
    without it, bit for bit: output, gradients, running statistics and counter."""
    case = draw_case(impl, data, layouts=False, large=False)
    dy = inputs.channels(case.seed + 5, case.shape, case.dtype)
    plain, det = case.fresh(impl), case.fresh(impl)
    for training, condition in ((True, "train-same"), (False, "eval-same")):
        what = f"{case.describe()}, {'training' if training else 'eval'}, deterministic algorithms on"
        for layer in (plain, det):
            layer.train(training)
        expected = plain.forward_backward(case.x, dy, dtype=case.dtype)
        try:
            got = det.forward_backward_deterministic(case.x, dy, dtype=case.dtype)
        except NotProvided:
            raise
        except Exception as e:  # noqa: BLE001 - the error is the observation
            ph.check(False, "BN-DETERMINISTIC-01", "runs", f"raised {type(e).__name__}: {e} [{what}]",
                     severity="exception")
            return
        ph.held("BN-DETERMINISTIC-01", "runs")
        for field in ("y", "dx", "dweight", "dbias"):
            if getattr(expected, field) is not None or getattr(got, field) is not None:
                ph.assert_equal(getattr(got, field), getattr(expected, field), "BN-DETERMINISTIC-01", condition,
                                f"{field}, {what}")
        _assert_same_state(det.state(), plain.state(), "BN-DETERMINISTIC-01", condition, f"state, {what}")


# ------------------------------------------------------------------------------- BN-VMAP-01, DO-VMAP-01
def _probe_vmap(inner, kind):
    layer = _layer(inner, kind) if kind.startswith("BatchNorm") else _layer(inner, kind, p=0.5)
    layer.train(False)
    layer.vmap_forward(np.ones((2,) + _probe_shape(kind)), randomness="error")


def _vmap_error(out) -> str | None:
    return out.extra.get("forward_error")


@pytest.mark.clause("BN-VMAP-01")
@_requires(_probe_vmap, BN_KINDS)
@hh.given(data=st.data())
def test_batchnorm_under_vmap(impl, data):
    """BatchNorm mapped over a leading axis (torch.func.vmap), each x[i] one input: in eval it equals the
    per-input loop within twice BN-EVAL-01's bound (another kernel path: not bit for bit); in training with running statistics it raises RuntimeError; after
    replace_all_batch_norm_modules_ the layer holds no running statistics, its eval normalises with the batch
    statistics (a layer without tracking, bit for bit) and its mapped training equals the loop within twice
    BN-TRAIN-01's bound."""
    # inputs in the parameters' dtype: torch 2.13's batched eval kernel raises "expected scalar type Half but found
    # Float" for a half input with float32 statistics, which the unbatched call accepts (not covered here)
    case = draw_case(impl, data, track=True, layouts=False, large=False, dtypes=("float32", "float64"))
    b = data.draw(st.integers(1, 3), label="B")
    xs = np.stack([case.x] + [case.another_input(case.seed + 11 + i) for i in range(b - 1)])
    what = f"{case.describe()}, mapped over {b} inputs"
    layer = case.fresh(impl)
    layer.train(False)
    out = layer.vmap_forward(xs, randomness="error", dtype=case.dtype)
    ph.check(_vmap_error(out) is None, "BN-VMAP-01", "eval-equals-loop",
             f"vmap of the eval layer raised {_vmap_error(out)} [{what}]", severity="exception")
    if _vmap_error(out) is None:
        # both are the layer's computation of the same values, each within BN-EVAL-01's bound: vmap runs another
        # kernel path than the loop (torch 2.13: 1 ulp apart in float64), so not bit for bit
        loop = np.stack([layer.forward(xi, dtype=case.dtype).y for xi in xs])
        atol = 2 * np.stack([tol.bn_eval_output(xi, case.running_mean, case.running_var, case.weight, case.bias,
                                                case.eps, case.dtype) for xi in xs])
        ph.assert_close(out.y, loop, atol, "BN-VMAP-01", "eval-equals-loop", f"eval under vmap against the loop, {what}")
    layer = case.fresh(impl)
    layer.train(True)
    out = layer.vmap_forward(xs, randomness="error", dtype=case.dtype)
    err = _vmap_error(out)
    ph.check(bool(err) and err.startswith("RuntimeError"), "BN-VMAP-01", "train-raises",
             f"vmap of the training layer with running statistics gave {err or 'no error'}, expected RuntimeError "
             f"(the running statistics cannot take a per-input update) [{what}]",
             observed=err or "no error", expected="RuntimeError", severity="wrong-state")
    replaced = case.fresh(impl)
    replaced.replace_batch_norm()
    state = replaced.state()
    kept = [k for k in STATS + ("num_batches_tracked",) if state[k] is not None]
    ph.check(not kept, "BN-VMAP-01", "replaced-buffers",
             f"after replace_all_batch_norm_modules_ the layer still holds {kept}, expected no running statistics "
             f"[{what}]", observed=kept, expected=[], severity="wrong-state")
    untracked = case.fresh(impl, track_running_stats=False)
    for mode in (False, True):
        replaced.train(mode)
        untracked.train(mode)
        if not mode:
            ph.assert_equal(replaced.forward(case.x, dtype=case.dtype).y, untracked.forward(case.x, dtype=case.dtype).y,
                            "BN-VMAP-01", "replaced-eval-batch-stats",
                            f"eval after replace_all_batch_norm_modules_ against a layer without tracking, {what}")
            continue
        out = replaced.vmap_forward(xs, randomness="error", dtype=case.dtype)
        ph.check(_vmap_error(out) is None, "BN-VMAP-01", "replaced-train-equals-loop",
                 f"vmap of the patched training layer raised {_vmap_error(out)} [{what}]", severity="exception")
        if _vmap_error(out) is None:
            loop = np.stack([untracked.forward(xi, dtype=case.dtype).y for xi in xs])
            atol = 2 * np.stack([tol.bn_train_output(xi, case.weight, case.bias, case.eps, case.dtype)[0] for xi in xs])
            ph.assert_close(out.y, loop, atol, "BN-VMAP-01", "replaced-train-equals-loop",
                            f"training under vmap after replace_all_batch_norm_modules_ against the loop, {what}")


@pytest.mark.clause("DO-VMAP-01")
@_requires(_probe_vmap, ("Dropout",))
@hh.given(data=st.data())
def test_dropout_under_vmap(impl, data):
    """Dropout mapped over a leading axis (torch.func.vmap): in training, randomness="error" raises
    RuntimeError, "different" draws a mask per input, "same" one mask for every input, each output 0 or
    x/(1-p); in eval the map is the identity under "error" (no random operation)."""
    b = data.draw(st.integers(2, 4), label="B")
    shape = data.draw(st.sampled_from(((64,), (4, 16), (2, 4, 8), (2, 2, 4, 4))), label="shape")
    p = data.draw(hh.probabilities(0.2, 0.8), label="p")
    dtype = data.draw(hh.expressed(impl, "Dropout", "dtype", ("float32", "float64")), label="dtype")
    seed = data.draw(hh.seeds(), label="seed")
    xs = inputs.nonzero(seed, (b,) + shape, dtype)
    layer = construct(impl, "Dropout", p=p)
    what = f"Dropout(p={p}) mapped over {b} inputs of {shape}, {dtype}"
    layer.train(True)
    impl.seed(seed)
    err = _vmap_error(layer.vmap_forward(xs, randomness="error", dtype=dtype))
    ph.check(bool(err) and err.startswith("RuntimeError"), "DO-VMAP-01", "error-raises",
             f"randomness='error' gave {err or 'no error'}, expected RuntimeError [{what}]",
             observed=err or "no error", expected="RuntimeError", severity="wrong-state")
    for randomness in ("different", "same"):
        impl.seed(seed)
        out = layer.vmap_forward(xs, randomness=randomness, dtype=dtype)
        condition = "different-masks" if randomness == "different" else "same-mask"
        ph.check(_vmap_error(out) is None, "DO-VMAP-01", condition,
                 f"randomness={randomness!r} raised {_vmap_error(out)} [{what}]", severity="exception")
        if _vmap_error(out) is not None:
            continue
        ph.assert_inverted_dropout(xs, out.y, p, dtype, "DO-VMAP-01", f"{what}, randomness={randomness!r}")
        masks = ph.read_mask(out.y).reshape(b, -1)
        distinct = len({m.tobytes() for m in masks})
        # 'different': b masks of >= 64 independent draws each, equal with probability < 0.68^64 ~ 2e-11
        ok = distinct == b if randomness == "different" else distinct == 1
        ph.check(ok, "DO-VMAP-01", condition,
                 f"got {distinct} distinct masks among {b} inputs, expected {b if randomness == 'different' else 1} "
                 f"[{what}, randomness={randomness!r}]", observed=distinct,
                 expected=b if randomness == "different" else 1)
    layer.train(False)
    out = layer.vmap_forward(xs, randomness="error", dtype=dtype)
    ph.check(_vmap_error(out) is None, "DO-VMAP-01", "eval-identity",
             f"vmap of the eval layer raised {_vmap_error(out)} [{what}]", severity="exception")
    if _vmap_error(out) is None:
        ph.assert_equal(out.y, xs, "DO-VMAP-01", "eval-identity", f"eval under vmap, {what}")


# ---------------------------------------------------------------------------------------- BN-FUNCCALL-01
def _probe_functional(inner, kind):
    layer = _layer(inner, kind)
    layer.train(False)
    layer.functional_forward(np.ones(_probe_shape(kind)))


@pytest.mark.clause("BN-FUNCCALL-01")
@_requires(_probe_functional, BN_KINDS)
@hh.given(data=st.data())
def test_functional_call_updates_the_buffers_passed_in(impl, data):
    """A training call through torch.func.functional_call with the layer's parameters and copies of its
    buffers: the output and the updated passed-in buffers (counter 1) equal an ordinary training call's, bit for
    bit; the layer's own buffers and counter are untouched."""
    case = draw_case(impl, data, track=True, layouts=False, large=False)
    what = f"{case.describe()}, training through functional_call"
    layer, ordinary = case.fresh(impl), case.fresh(impl)
    layer.train(True)
    ordinary.train(True)
    before = layer.state()
    out = layer.functional_forward(case.x, dtype=case.dtype)
    _assert_same_state(layer.state(), before, "BN-FUNCCALL-01", "module-untouched",
                       f"the layer's own state after the call against before it, {what}")
    y = ordinary.forward(case.x, dtype=case.dtype).y
    ph.assert_equal(out.y, y, "BN-FUNCCALL-01", "output", f"output against an ordinary training call, {what}")
    passed = {k: out.extra["buffers"].get(k) for k in STATS + ("num_batches_tracked",)}
    _assert_same_state(passed, ordinary.state(), "BN-FUNCCALL-01", "passed-buffers-updated",
                       f"the buffers passed in, after the call, against an ordinary call's state, {what}")
