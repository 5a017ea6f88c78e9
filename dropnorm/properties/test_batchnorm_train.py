"""BatchNorm in training: output, running statistics, counters, metamorphic properties
(BN-TRAIN-01..07, BN-AFFINE-01, BN-INPUT-01, BN-META-01, BN-META-02, BN-DTYPE-01, BN-LAYOUT-01)."""
import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.spec import conventions
from dropnorm.suite import inputs
from dropnorm.spec.dtypes import UNIT_ROUNDOFF, round_to
from dropnorm.suite import strategies as hh
from dropnorm.spec import tolerances as tol
from dropnorm.adapters import NotProvided
from dropnorm.suite.bn_setup import GRID_SHAPES, build_case, draw_case, expected_running, grid_dims, provided_dims



@pytest.mark.clause("BN-TRAIN-01", "BN-AFFINE-01", "BN-INPUT-01", "BN-DTYPE-01", "BN-LAYOUT-01")
@hh.given(data=st.data())
def test_training_output(impl, data):
    """y = gamma (x - mu)/sqrt(var + eps) + beta per channel, biased var, in every dtype and layout, on
    inputs from the whole domain (exact zeros of either sign, post-ReLU and all-zero channels, repeated
    values, a trend along the batch, magnitudes 2^+-30 in float32: bn_setup.input_domains)."""
    case = draw_case(impl, data, domain=True)
    case.layer.train(True)
    exact_sums = not case.structured  # the probabilistic summation bound needs independent roundings
    expected = ref.batchnorm_train_forward(case.x, case.weight, case.bias, case.eps)
    # A failure is blamed on the layout or the half dtype only if the plain case passes: the same
    # values, contiguous, in float32 for a half dtype (they are exact there). The blame then does not
    # depend on how far hypothesis shrinks the example. The plain run uses a fresh twin of the layer,
    # so the drawn run sees a layer no call has changed (a defect that changes state is not blamed on
    # the layout).
    plain = "float32" if case.dtype in hh.LOW_PRECISION else case.dtype
    if (case.layout, case.dtype) != ("contiguous", plain):
        twin = case.fresh(impl)
        twin.train(True)
        base = twin.forward(case.x.copy(), dtype=plain)
        base_tol, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, plain, probabilistic=exact_sums)
        ph.assert_close(base.y, expected, base_tol, "BN-TRAIN-01", "output", f"{case.describe()} as contiguous {plain}")
    # a copy: the adapter may share x's memory with the tensor, and an in-place write must not
    # reach the values the reference and the BN-INPUT-01 check use
    out = case.layer.forward(case.x.copy(), dtype=case.dtype, layout=case.layout)
    atol, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, case.dtype, probabilistic=exact_sums)
    clause = ("BN-LAYOUT-01" if case.layout != "contiguous" else
              "BN-DTYPE-01" if case.dtype in hh.LOW_PRECISION else "BN-TRAIN-01")
    ph.assert_dtype(out.dtype, case.dtype, "BN-DTYPE-01", case.describe())
    ph.assert_close(out.y, expected, atol, clause, "output", case.describe())
    ph.assert_equal(out.x_after, case.x, "BN-INPUT-01", "input-unchanged", case.describe())
    state = case.layer.state()
    if not case.affine:
        ph.check(state["weight"] is None and state["bias"] is None, "BN-AFFINE-01", "no-parameters",
                 f"got weight/bias present with affine=False [{case.describe()}]", severity="wrong-state")


@pytest.mark.clause("BN-TRAIN-02", "BN-TRAIN-03", "BN-TRAIN-05", "BN-DTYPE-01", "BN-LAYOUT-01")
@hh.given(data=st.data())
def test_running_statistics(impl, data):
    """After each of 1-3 training calls: rm' = (1-w) rm + w mu, rv' = (1-w) rv + w v, with w the
    new-batch weight and v the batch variance of the implementation's convention (PyTorch: w = m,
    v = var n/(n-1); ONNX, Keras, Flax: w = 1 - their momentum, v = var); t' = t + 1 and m = 1/t'
    for momentum=None where there is a counter; statistics stay in the parameter dtype. For a
    non-contiguous layout a fresh twin runs the same calls contiguously first: the layout's
    statistics are blamed on BN-LAYOUT-01 only when the contiguous ones passed."""
    conv = conventions.of(impl)
    case = draw_case(impl, data, track=True, domain=True)
    # a layer without the counter its convention keeps fails BN-TRAIN-05/counter-exists
    # (dropnorm/properties/test_provided.py); its running statistics are still judged here
    counter = conv.counter and case.layer.state()["num_batches_tracked"] is not None
    t0 = data.draw(st.integers(0, 5), label="num_batches_tracked") if counter else None
    runs = [("contiguous", case.layer)]
    if case.layout != "contiguous":
        runs = [("contiguous", case.fresh(impl)), (case.layout, case.layer)]
    for _, layer in runs:
        if counter:
            layer.load(num_batches_tracked=t0)
        layer.train(True)
    steps = data.draw(st.integers(1, 3), label="steps")
    tracked = {layout: (case.running_mean, case.running_var, t0 or 0) for layout, _ in runs}
    trajectory = []
    for step in range(steps):
        x = case.x if step == 0 else case.another_input(case.seed + 10 + step)
        for layout, layer in runs:
            rm, rv, t = tracked[layout]
            layer.forward(x, dtype=case.dtype, layout=layout)
            # the convention's update (zero-debiased where it has zero_debias) and its bounds
            exp_rm, exp_rv, t, d_rm, d_rv = expected_running(impl, case, x, rm, rv, t)
            state = layer.state()
            what = f"{case.describe()}, run {layout}, step {step + 1}, convention {conv.name}"
            mean_clause, var_clause = (("BN-TRAIN-02", "BN-TRAIN-03") if layout == "contiguous"
                                       else ("BN-LAYOUT-01", "BN-LAYOUT-01"))
            ph.assert_close(state["running_mean"], exp_rm, d_rm, mean_clause, "running-mean", what)
            ph.assert_close(state["running_var"], exp_rv, d_rv, var_clause, "running-var", what)
            if counter:
                ph.check(state["num_batches_tracked"] == t, "BN-TRAIN-05", "count",
                         f"got num_batches_tracked {state['num_batches_tracked']}, expected {t} [{what}]", severity="wrong-state")
            ph.check(state["param_dtype"] == case.param_dtype, "BN-DTYPE-01", "stats-dtype",
                     f"got running statistics in {state['param_dtype']}, expected {case.param_dtype} [{what}]", severity="wrong-state")
            if layer is case.layer and state["running_mean"] is not None and state["running_var"] is not None:
                trajectory.append([step + 1] + [float(v[0]) for v in (state["running_mean"], exp_rm,
                                                                      state["running_var"], exp_rv)])
            tracked[layout] = (state["running_mean"], state["running_var"], t)
    # channel 0's running statistics against the reference, for the report's figure
    ph.measure("BN-TRAIN-02", "trajectory", kind="trajectory", steps=trajectory)


@pytest.mark.clause("BN-TRAIN-01", "BN-TRAIN-02", "BN-TRAIN-03", "BN-DTYPE-01", "BN-LAYOUT-01")
@pytest.mark.parametrize("rank", sorted(GRID_SHAPES))
def test_every_layout_and_dtype_on_every_kind(impl, rank):
    """The two tests above on a fixed grid: every rank a BatchNormNd reads, one training call from loaded
    statistics, contiguous float32 and then every other layout (BN-LAYOUT-01: output, running-mean,
    running-var) and every other dtype (BN-DTYPE-01: output, dtype, stats-dtype), each on a fresh layer of the
    same case. A pass of BN-LAYOUT-01 or BN-DTYPE-01 on a kind requires each of their conditions to have run
    there (issue 22, per-condition coverage); the drawn tests' few examples per kind reach a strided layout or
    a half dtype only by chance (a fresh-seed soak left BN-LAYOUT-01/output unrun on BatchNorm1d and
    BN-DTYPE-01/output on BatchNorm3d in about 1 run in 10): this grid reaches them in every profile. Blame as
    in the drawn tests: a layout's values against the reference while the contiguous run passed, else against
    that run (compare_layout_run); a dtype's after its values passed contiguously in float32."""
    dims = grid_dims(impl, rank)
    kind = f"BatchNorm{dims}d"
    shape, seed = GRID_SHAPES[rank], 300 + rank
    runs = [("contiguous", "float32")] + [(layout, "float32") for layout in hh.layout_names(len(shape))[1:]]
    runs += [("contiguous", d) for d in ("float64", *hh.LOW_PRECISION)]
    seen = {}
    for layout, dtype in runs:
        param_dtype = "float64" if dtype == "float64" else "float32"
        if not impl.expresses(kind, dtype=dtype, param_dtype=param_dtype):
            continue
        case = build_case(impl, dims, shape, eps=1e-5, momentum=0.1, affine=True, track=True, dtype=dtype,
                          layout=layout, seed=seed)
        expected = ref.batchnorm_train_forward(case.x, case.weight, case.bias, case.eps)
        atol, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, dtype)
        if dtype in hh.LOW_PRECISION:  # its values (exact in float32) pass contiguously in float32 first
            twin = case.fresh(impl)
            twin.train(True)
            base_tol, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, "float32")
            ph.assert_close(twin.forward(case.x.copy(), dtype="float32").y, expected, base_tol, "BN-TRAIN-01",
                            "output", f"{case.describe()} as contiguous float32")
        case.layer.train(True)
        out = case.layer.forward(case.x.copy(), dtype=dtype, layout=layout)
        what = f"{case.describe()}, one training call (grid)"
        ph.assert_dtype(out.dtype, dtype, "BN-DTYPE-01", what)
        exp_rm, exp_rv, _, d_rm, d_rv = expected_running(impl, case, case.x, case.running_mean,
                                                         case.running_var, 0)
        state = case.layer.state()
        ph.check(state["param_dtype"] == param_dtype, "BN-DTYPE-01", "stats-dtype",
                 f"got running statistics in {state['param_dtype']}, expected {param_dtype} [{what}]",
                 severity="wrong-state")
        low = dtype in hh.LOW_PRECISION
        for clause, condition, got, value, bound in (
                ("BN-DTYPE-01" if low else "BN-TRAIN-01", "output", out.y, expected, atol),
                ("BN-TRAIN-02", "running-mean", state["running_mean"], exp_rm, d_rm),
                ("BN-TRAIN-03", "running-var", state["running_var"], exp_rv, d_rv)):
            if layout == "contiguous":
                ratio = ph.assert_close(got, value, bound, clause, condition, what)
                if dtype == "float32":
                    seen[condition] = (got, clause, ratio <= 1.0)  # NaN ratio: not passed
            elif seen.get(condition, (None, None, True))[2]:
                ph.assert_close(got, value, bound, "BN-LAYOUT-01", condition, what)
            else:  # the contiguous run already fails: the layout only where it departs from that run
                base, failing, _ = seen[condition]
                ph.assert_close(got, base, 2 * np.asarray(bound), "BN-LAYOUT-01", condition,
                                f"{what}, against the contiguous run, which fails {failing}/{condition}")


@pytest.mark.clause("BN-TRAIN-04")
@hh.given(data=st.data())
def test_momentum_none_is_cumulative_average(impl, data):
    """momentum=None after a reset: running mean and variance are the plain averages of the
    batch means and unbiased variances of the k training calls so far."""
    case = draw_case(impl, data, track=True, momentum=None, layouts=False)
    case.layer.load(running_mean=np.zeros(case.shape[1]), running_var=np.ones(case.shape[1]), num_batches_tracked=0)
    steps = data.draw(st.integers(1, 4), label="steps")
    case.layer.train(True)
    means, variances, bounds = [], [], []
    for step in range(steps):
        x = inputs.channels(case.seed + step, case.shape, case.dtype)
        case.layer.forward(x, dtype=case.dtype)
        mean, var, n = ref.batch_statistics(x)
        means.append(mean)
        variances.append(var * n / (n - 1))
        bounds.append(tol.bn_running(x, mean, var * n / (n - 1), 1.0, case.dtype, case.param_dtype))
    state = case.layer.state()
    # each step's update carries at most its own bound, and later steps scale earlier errors by <= 1
    d_rm = sum(b[0] for b in bounds)
    d_rv = sum(b[1] for b in bounds)
    what = f"{case.describe()}, {steps} steps"
    ph.assert_close(state["running_mean"], np.mean(means, axis=0), d_rm, "BN-TRAIN-04", "mean-average", what)
    ph.assert_close(state["running_var"], np.mean(variances, axis=0), d_rv, "BN-TRAIN-04", "var-average", what)


@pytest.mark.clause("BN-TRAIN-05", "BN-EVAL-03")
@hh.given(data=st.data())
def test_counter_follows_training_calls(impl, data):
    """num_batches_tracked rises by one per training call (momentum 0 too) and not at eval."""
    conv = conventions.of(impl)
    if not conv.counter:
        raise NotProvided(f"the {conv.name} convention keeps no training-call counter (spec/conventions.toml)")
    case = draw_case(impl, data, track=True, momentum=data.draw(st.sampled_from([0.0, 0.1, None]),
                                                                label="momentum"))
    modes = data.draw(st.lists(st.booleans(), min_size=1, max_size=6), label="training sequence")
    for mode in modes:
        case.layer.train(mode)
        case.layer.forward(case.x, dtype=case.dtype)
    got = case.layer.state()["num_batches_tracked"]
    ph.check(got == sum(modes), "BN-TRAIN-05", "count",
             f"got num_batches_tracked {got}, expected {sum(modes)} after modes {modes} [{case.describe()}]", severity="wrong-state")


@pytest.mark.clause("BN-TRAIN-06")
@pytest.mark.parametrize("track,training", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 3, 1, 1), (1, 3, 1, 1, 1)])
def test_one_value_per_channel(impl, shape, track, training):
    """BN-TRAIN-06: n = 1 value per channel in every call that normalises with batch statistics (training;
    with track_running_stats=False eval too, where no running variance exists): ValueError where the
    running variance is unbiased (torch checks the batch size in F.batch_norm, measured on 2.13.0 in all
    three cases); y = beta and finite statistics where it is biased (var = 0)."""
    dims = {2: 1, 3: 1, 4: 2, 5: 3}[len(shape)]
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    conv = conventions.of(impl)
    if not track and not impl.expresses(f"BatchNorm{dims}d", track_running_stats=False):
        raise NotProvided(f"{impl.name}: BatchNorm{dims}d has no track_running_stats=False")
    layer = impl.batchnorm(dims, 3, track_running_stats=track)
    layer.train(training)
    where = f"{shape}, track_running_stats={track}, training={training}"
    try:
        out = layer.forward(np.ones(shape))
    except ValueError as e:
        ph.held("BN-TRAIN-06", "error-type")  # a ValueError, the one type allowed
        ph.check(conv.running_var == "unbiased", "BN-TRAIN-06", "computes",
                 f"got ValueError({e}), expected y = beta under the biased convention of {conv.name} [{where}]")
        if conv.running_var == "unbiased":
            ph.held("BN-TRAIN-06", "raises")
            # the error is the behaviour due: there is no output or statistics to compare
            ph.inapplicable("BN-TRAIN-06", "output")
            ph.inapplicable("BN-TRAIN-06", "running-finite")
        return
    except NotProvided:  # what the implementation cannot express is not a failure
        raise
    except Exception as e:  # noqa: BLE001
        ph.check(False, "BN-TRAIN-06", "error-type", f"got {type(e).__name__}: {e}, expected "
                 f"{'ValueError' if conv.running_var == 'unbiased' else 'an output'} [{where}]", severity="invalid-accepted")
        return
    if conv.running_var == "unbiased":
        ph.check(False, "BN-TRAIN-06", "raises", f"got an output, expected ValueError for input {where}", severity="invalid-accepted")
        return
    ph.held("BN-TRAIN-06", "error-type")
    ph.held("BN-TRAIN-06", "computes")
    ph.inapplicable("BN-TRAIN-06", "raises")  # the biased convention defines the statistics: no error is due
    ph.assert_equal(out.y, np.zeros(shape), "BN-TRAIN-06", "output", f"y = beta = 0 for input {where} ({conv.name})")
    if not track:
        return
    s = layer.state()
    ph.check(bool(np.all(np.isfinite(s["running_mean"])) and np.all(np.isfinite(s["running_var"]))),
             "BN-TRAIN-06", "running-finite", f"got running statistics {s['running_mean']}, {s['running_var']} [{where}]")


@pytest.mark.clause("BN-TRAIN-06", "BN-TRAIN-01")
@hh.given(data=st.data())
def test_single_sample_with_spatial_extent(impl, data):
    """N = 1 with spatial size > 1 normalises normally."""
    dims = data.draw(st.sampled_from([d for d in provided_dims(impl)]), label="dims")
    spatial = {1: (3,), 2: (2, 3), 3: (1, 2, 2)}[dims]
    seed = data.draw(hh.seeds(), label="seed")
    x = inputs.channels(seed, (1, 2) + spatial, "float64")
    layer = impl.batchnorm(dims, 2)
    layer.to("float64")
    layer.train(True)
    out = layer.forward(x, dtype="float64")
    eps = conventions.of(impl).attribute(1e-5)  # as the layer stores it
    atol, _ = tol.bn_train_output(x, None, None, eps, "float64")
    ph.assert_close(out.y, ref.batchnorm_train_forward(x, eps=eps), atol, "BN-TRAIN-06", "spatial-output",
                    f"BatchNorm{dims}d on {x.shape}")


@pytest.mark.clause("BN-TRAIN-07")
@pytest.mark.parametrize("dims,shape", [(1, (0, 3)), (2, (0, 3, 2, 2)), (3, (0, 3, 1, 2, 2))])
def test_empty_batch_keeps_statistics_finite(impl, dims, shape):
    """BN-TRAIN-07: N = 0 in training returns an empty output and leaves the running statistics
    unchanged bit for bit (no NaN written into them); where the convention keeps a counter the call
    counts (t 0 -> 1), and with momentum=None the next batch is weighed by 1/(t+1) counting the empty
    call: rm = mu/2 after one empty call (torch 2.13.0), which BN-TRAIN-04 now states too."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    conv = conventions.of(impl)
    cma = conv.cumulative_average and impl.expresses(f"BatchNorm{dims}d", momentum=None)
    layer = impl.batchnorm(dims, 3, momentum=None) if cma else impl.batchnorm(dims, 3)
    layer.train(True)
    before = layer.state()
    out = layer.forward(np.zeros(shape))
    what = f"BatchNorm{dims}d(3{', momentum=None' if cma else ''}) on an empty batch {shape}"
    ph.assert_shape(out.y.shape, shape, "BN-TRAIN-07", what)
    s = layer.state()
    finite = bool(np.all(np.isfinite(s["running_mean"])) and np.all(np.isfinite(s["running_var"])))
    ph.check(finite, "BN-TRAIN-07", "finite", f"got running_mean {s['running_mean']}, running_var {s['running_var']} "
                                              f"after an empty batch, expected finite values")
    if not finite:  # a NaN written in is finite's failure (recorded for several frameworks), reported once
        return
    for key in ("running_mean", "running_var"):
        ph.assert_equal(s[key], before[key], "BN-TRAIN-07", "unchanged", f"{key}, {what}")
    if not conv.counter:
        return
    t0 = before["num_batches_tracked"]
    ph.check(s["num_batches_tracked"] == t0 + 1, "BN-TRAIN-07", "counter",
             f"got num_batches_tracked {s['num_batches_tracked']!r}, expected {t0 + 1} (the empty call counts as a "
             f"training call) [{what}]", observed=s["num_batches_tracked"], expected=t0 + 1, severity="wrong-state")
    if not cma:
        return
    # the next non-empty batch: m = 1/(t + 1) with the empty call in t (t = 1 here: m = 1/2)
    x = inputs.channels(7, (4,) + shape[1:], "float32")
    t = int(s["num_batches_tracked"])
    layer.forward(x, dtype="float32")
    rm, rv, _ = ref.running_update(s["running_mean"], s["running_var"], t, x, None)
    d_rm, d_rv = tol.bn_running(x, s["running_mean"], s["running_var"], 1.0 / (t + 1), "float32", "float32")
    after = layer.state()
    ph.assert_close(after["running_mean"], rm, d_rm, "BN-TRAIN-07", "cma-weight", f"running_mean, {what}, then x {x.shape}, m = 1/{t + 1}")
    ph.assert_close(after["running_var"], rv, d_rv, "BN-TRAIN-07", "cma-weight", f"running_var, {what}, then x {x.shape}, m = 1/{t + 1}")


@pytest.mark.clause("BN-META-01")
@hh.given(data=st.data())
def test_affine_invariance(impl, data):
    """BN_{a^2 eps, sign(a_c) gamma, beta}(a_c x + b_c) == BN_{eps, gamma, beta}(x) per channel, with
    |a_c| = a shared (eps is one number per layer) and a_c of either sign, in every dtype; without
    affine parameters the output of a channel with a_c < 0 flips sign."""
    case = draw_case(impl, data, layouts=False, track="unused")
    c, nd = case.shape[1], case.x.ndim
    a = data.draw(st.sampled_from([0.25, 0.5, 2.0, 4.0]), label="a")  # powers of 2: a x and a^2 eps are exact
    signs = np.array(data.draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=c, max_size=c), label="signs"))
    b = inputs.vector(case.seed + 7, c, "float32", scale=5.0)

    def per_channel(v):
        return np.asarray(v, np.float64).reshape((1, -1) + (1,) * (nd - 2))

    exact = a * per_channel(signs) * case.x + per_channel(b)
    x2 = round_to(exact, case.dtype)  # the input as the layer receives it
    case.layer.train(True)
    y1 = case.layer.forward(case.x, dtype=case.dtype).y
    layer2 = case.fresh(impl, eps=case.eps * a * a)
    w2 = None if case.weight is None else signs * np.asarray(case.weight, np.float64)
    if case.affine:
        layer2.load(weight=w2)
    layer2.train(True)
    y2 = layer2.forward(x2, dtype=case.dtype).y
    expected = y1 if case.affine else per_channel(signs) * y1
    # each output within its own bound of the exact BN of its input (dropnorm/spec/tolerances.py), plus the
    # effect of rounding a_c x + b_c to the dtype: an input error |d_i| <= u |x2_i| moves xhat_i by at
    # most (|d_i| + D)/s + 2 |xhat_i| D/s, D = max |d| of the channel, s = sqrt(var(x2) + a^2 eps)
    t1, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, case.dtype)
    t2, _ = tol.bn_train_output(x2, w2, case.bias, case.eps * a * a, case.dtype)
    d = (UNIT_ROUNDOFF[case.dtype] + UNIT_ROUNDOFF["float64"]) * np.abs(exact)
    axes = (0,) + tuple(range(2, nd))
    big_d = d.max(axis=axes, keepdims=True)
    mean2 = exact.mean(axis=axes, keepdims=True)
    s2 = np.sqrt(((exact - mean2) ** 2).mean(axis=axes, keepdims=True) + case.eps * a * a)
    g = np.abs(per_channel(np.ones(c) if case.weight is None else case.weight))
    t_round = tol.SAFETY * g * ((d + big_d) / s2 + 2 * np.abs(exact - mean2) / s2 * big_d / s2)
    ph.assert_close(y2, expected, t1 + t2 + t_round, "BN-META-01", "invariance",
                    f"{case.describe()}, a={a}, signs={signs.tolist()}")


@pytest.mark.clause("BN-META-02")
@hh.given(data=st.data())
def test_batch_permutation(impl, data):
    """Permuting the batch permutes the training output; running statistics agree within rounding."""
    case = draw_case(impl, data, track=True, momentum=0.5, layouts=False)
    perm = np.random.default_rng(case.seed).permutation(case.shape[0])
    twin = case.layer.roundtrip()
    case.layer.train(True)
    twin.train(True)
    y = case.layer.forward(case.x, dtype=case.dtype).y
    yp = twin.forward(case.x[perm], dtype=case.dtype).y
    atol, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, case.dtype)
    ph.assert_close(yp, y[perm], 2 * atol[perm], "BN-META-02", "permuted-output", case.describe())
    t = case.layer.state()["num_batches_tracked"] or 1   # counter after the step: a zero-debiased weight needs it
    d_rm, d_rv = tol.bn_running(case.x, case.running_mean, case.running_var,
                                conventions.of(impl).new_batch_weight(0.5, t), case.dtype, case.param_dtype,
                                variance=conventions.of(impl).running_var)
    s1, s2 = case.layer.state(), twin.state()
    ph.assert_close(s2["running_mean"], s1["running_mean"], 2 * d_rm, "BN-META-02", "running-mean", case.describe())
    ph.assert_close(s2["running_var"], s1["running_var"], 2 * d_rv, "BN-META-02", "running-var", case.describe())


@pytest.mark.clause("BN-DEFAULT-01")
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_documented_defaults(impl, dims):
    """A layer built with the framework's defaults moves its running statistics by the documented
    default momentum (in the documented direction, with the documented variance) and normalises
    with the documented default eps in eval."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    conv = conventions.of(impl)
    layer = impl.batchnorm_defaults(dims, 3)
    shape = {1: (6, 3), 2: (2, 3, 2, 3), 3: (2, 3, 1, 2, 3)}[dims]
    x = inputs.channels(dims, shape, "float32", offset=3.0)
    rm0, rv0 = np.zeros(3), np.ones(3)
    layer.train(True)
    layer.forward(x, dtype="float32")
    fm, eps = conv.attribute(conv.momentum_default), conv.attribute(conv.eps_default)
    exp_rm, exp_rv, _ = ref.running_update(rm0, rv0, 0, x, fm, momentum_of=conv.momentum_of,
                                           variance=conv.running_var)
    w = fm if conv.momentum_of == "new" else 1.0 - fm
    d_rm, d_rv = tol.bn_running(x, rm0, rv0, w, "float32", "float32", variance=conv.running_var)
    what = (f"BatchNorm{dims}d with {conv.name}'s defaults (momentum {conv.momentum_default} weighing the "
            f"{conv.momentum_of} value, {conv.running_var} variance, eps {conv.eps_default})")
    state = layer.state()
    ph.assert_close(state["running_mean"], exp_rm, d_rm, "BN-DEFAULT-01", "running-mean", what)
    ph.assert_close(state["running_var"], exp_rv, d_rv, "BN-DEFAULT-01", "running-var", what)
    layer.train(False)
    xe = inputs.channels(dims + 10, shape, "float32", spread=0.03)  # small variance: eps shows
    rm, rv = state["running_mean"], state["running_var"]
    y = layer.forward(xe, dtype="float32").y
    expected = ref.batchnorm_eval_forward(xe, rm, rv, state["weight"], state["bias"], eps)
    atol = tol.bn_eval_output(xe, rm, rv, state["weight"], state["bias"], eps, "float32")
    ph.assert_close(y, expected, atol, "BN-DEFAULT-01", "eval-eps-output", what)
