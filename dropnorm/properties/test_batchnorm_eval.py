"""BatchNorm in eval mode, without running statistics, and construction checks
(BN-EVAL-01..03, BN-NOTRACK-01, BN-API-01..03)."""
import math

import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.spec import conventions
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.adapters import NotProvided
from dropnorm.adapters.base import BATCHNORM_RANKS
from dropnorm.spec import tolerances as tol
from dropnorm.suite.bn_setup import GRID_SHAPES, build_case, draw_case, grid_dims, provided_dims
from dropnorm.properties._family import names_argument


def _same(a, b) -> bool:
    """Bitwise equal as ph.assert_equal compares (NaN equals NaN)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))



@pytest.mark.clause("BN-EVAL-01", "BN-EVAL-02", "BN-EVAL-03", "BN-INPUT-01")
@hh.given(data=st.data())
def test_eval_uses_running_statistics(impl, data):
    """y = gamma (x - rm)/sqrt(rv + eps) + beta; no state changes; a second call bitwise equal to the
    first (BN-EVAL-02, checked after the state so that a changed state is blamed on BN-EVAL-03)."""
    case = draw_case(impl, data, min_n=1, track=True, domain=True)
    case.layer.train(False)
    before = case.layer.state()
    # a copy: the adapter may share x's memory with the tensor (see test_training_output)
    out = case.layer.forward(case.x.copy(), dtype=case.dtype, layout=case.layout)
    expected = ref.batchnorm_eval_forward(case.x, case.running_mean, case.running_var, case.weight, case.bias,
                                          case.eps)
    atol = tol.bn_eval_output(case.x, case.running_mean, case.running_var, case.weight, case.bias, case.eps,
                              case.dtype)
    ph.assert_close(out.y, expected, atol, "BN-EVAL-01", "output", case.describe())
    ph.assert_equal(out.x_after, case.x, "BN-INPUT-01", "input-unchanged", case.describe())
    # the state is checked before the second call: a changed state is the cause, a second output
    # that differs from the first only its symptom
    after = case.layer.state()
    changed = False
    for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        if before[key] is not None:
            changed = changed or not _same(after[key], before[key])
            ph.assert_equal(after[key], before[key], "BN-EVAL-03", f"{key}-unchanged", case.describe())
    if not changed:  # after a state change a different second output is its symptom, blamed on BN-EVAL-03
        again = case.layer.forward(case.x.copy(), dtype=case.dtype, layout=case.layout)
        ph.assert_equal(again.y, out.y, "BN-EVAL-02", "deterministic", case.describe())


@pytest.mark.clause("BN-EVAL-03")
@pytest.mark.parametrize("rank", sorted(GRID_SHAPES))
def test_eval_leaves_every_buffer_on_every_kind(impl, rank):
    """BN-EVAL-03 of the test above on a fixed affine case per rank: an eval call leaves weight, bias, running
    statistics and counter exactly as they were. The drawn test's first example per kind has affine=False, so
    weight-unchanged and bias-unchanged ran on a kind only by chance (per-condition coverage)."""
    dims = grid_dims(impl, rank, affine=True)
    case = build_case(impl, dims, GRID_SHAPES[rank], eps=1e-5, momentum=0.1, affine=True, track=True,
                      dtype="float32", layout="contiguous", seed=400 + rank)
    case.layer.train(False)
    before = case.layer.state()
    case.layer.forward(case.x.copy(), dtype=case.dtype)
    after = case.layer.state()
    for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        if before[key] is not None:
            ph.assert_equal(after[key], before[key], "BN-EVAL-03", f"{key}-unchanged",
                            f"{case.describe()}, one eval call (grid)")


@pytest.mark.clause("BN-EVAL-02")
@hh.given(data=st.data())
def test_eval_samples_are_independent(impl, data):
    """BN(x)[i] == BN(x[i:i+1]) in eval mode. Each sample runs on a fresh layer with the same state,
    so a layer whose eval call changes its state (BN-EVAL-03) is not blamed here."""
    case = draw_case(impl, data, min_n=1, track=True, layouts=False, domain=True)
    case.layer.train(False)
    whole = case.layer.forward(case.x, dtype=case.dtype).y
    for i in range(case.shape[0]):
        layer = case.fresh(impl)
        layer.train(False)
        alone = layer.forward(case.x[i:i + 1], dtype=case.dtype).y
        atol = tol.bn_eval_output(case.x[i:i + 1], case.running_mean, case.running_var, case.weight, case.bias,
                                  case.eps, case.dtype)
        ph.assert_close(alone, whole[i:i + 1], 2 * atol, "BN-EVAL-02", "per-sample", f"{case.describe()}, sample {i}")


@pytest.mark.clause("BN-NOTRACK-01")
@hh.given(data=st.data())
def test_without_running_statistics(impl, data):
    """track_running_stats=False: no buffers, batch statistics in training and eval alike."""
    case = draw_case(impl, data, track=False, domain=True)
    state = case.layer.state()
    ph.check(state["running_mean"] is None and state["running_var"] is None and state["num_batches_tracked"] is None,
             "BN-NOTRACK-01", "no-buffers", f"got running buffers with track_running_stats=False [{case.describe()}]", severity="wrong-state")
    expected = ref.batchnorm_train_forward(case.x, case.weight, case.bias, case.eps)
    atol, _ = tol.bn_train_output(case.x, case.weight, case.bias, case.eps, case.dtype,
                                  probabilistic=not case.structured)  # bn_setup.Domain.structured
    for mode in (True, False):
        case.layer.train(mode)
        out = case.layer.forward(case.x, dtype=case.dtype, layout=case.layout)
        ph.assert_close(out.y, expected, atol, "BN-NOTRACK-01", "train-output" if mode else "eval-output",
                        f"{case.describe()}, training={mode}")


# the words that name each argument in an error message (names_argument: as a word, so "steps" does not name
# eps): torch's keywords and the names other conventions give them (Keras and Flax: epsilon)
ARGUMENT_NAMES = {"momentum": ("momentum",), "eps": ("eps", "epsilon")}


def _rejects(impl, dims, clause, condition, **kwargs):
    """BatchNorm{dims}d(3, **kwargs) must raise ValueError (`clause`/`condition`) whose message names the
    argument as a word (`clause`/message, names_argument with ARGUMENT_NAMES)."""
    name = next(iter(kwargs))
    try:
        impl.batchnorm(dims, 3, **kwargs)
    except ValueError as e:
        ph.held(clause, condition)  # rejected, as due
        names = ARGUMENT_NAMES.get(name, (name,))
        ph.check(names_argument(str(e), *names), clause, "message",
                 f"got ValueError({str(e)!r}), expected it to name {name} (as a word: one of {list(names)})",
                 severity="invalid-accepted")
        return
    except NotProvided:  # what the implementation cannot express is not a failure
        raise
    except Exception as e:  # noqa: BLE001
        ph.inapplicable(clause, "message")  # no ValueError whose message could name the argument
        ph.check(False, clause, condition, f"got {type(e).__name__}: {e}, expected ValueError [{kwargs}]", severity="invalid-accepted")
        return
    ph.inapplicable(clause, "message")
    ph.check(False, clause, condition, f"got a constructed layer, expected ValueError [BatchNorm{dims}d(3, {kwargs})]", severity="invalid-accepted")


@pytest.mark.clause("BN-API-01")
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("condition,momentum", [("out-of-range", -0.5), ("out-of-range", 1.5), ("nan", math.nan)])
def test_rejects_bad_momentum(impl, dims, condition, momentum):
    """momentum outside [0, 1] or NaN raises ValueError naming momentum, for every BatchNormNd."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    _rejects(impl, dims, "BN-API-01", condition, momentum=momentum)


@pytest.mark.clause("BN-API-02")
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("condition,eps", [("non-positive", 0.0), ("non-positive", -1e-5), ("non-finite", math.nan),
                                           ("non-finite", math.inf)])
def test_rejects_bad_eps(impl, dims, condition, eps):
    """eps <= 0 or non-finite raises ValueError naming eps, for every BatchNormNd."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    _rejects(impl, dims, "BN-API-02", condition, eps=eps)


@pytest.mark.clause("BN-API-03")
@pytest.mark.parametrize("training", [True, False])
# (3, 2, 2) and (3, 2, 2, 2) read as an unbatched (C, H, W) / (C, D, H, W) with C = num_features: a layer
# that accepts the unbatched form BatchNorm2d/3d do not have (round-3 blind probe bn2d_accepts_unbatched_3d
# escaped the (2, 3, 3) case, whose leading 2 is not the channel count) is caught there
@pytest.mark.parametrize("dims,shape", [(2, (2, 4, 3, 3)), (2, (2, 3, 3)), (2, (3, 2, 2)), (1, (2, 3, 2, 2)),
                                        (1, (2, 4)), (3, (2, 3, 2, 2)), (3, (3, 2, 2, 2)), (3, (2, 2, 2, 2, 2))])
def test_rejects_wrong_rank_or_channels(impl, dims, shape, training):
    """A wrong rank or channel count raises ValueError or RuntimeError, never returns (the rank
    rule where the convention has one class per rank), the unbatched forms included."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    conv = conventions.of(impl)
    if not conv.rank_specific and len(shape) not in BATCHNORM_RANKS[dims]:
        raise NotProvided(f"the {conv.name} convention has one rank-generic layer, no BatchNorm{dims}d rank rule")
    layer = impl.batchnorm(dims, 3)
    layer.train(training)
    try:
        layer.forward(np.ones(shape))
    except (ValueError, RuntimeError):
        ph.held("BN-API-03", "raises")
        ph.held("BN-API-03", "error-type")
        return
    except NotProvided:  # what the implementation cannot express is not a failure
        raise
    except Exception as e:  # noqa: BLE001
        ph.check(False, "BN-API-03", "error-type", f"got {type(e).__name__}: {e}, expected ValueError or RuntimeError", severity="invalid-accepted")
        return
    ph.check(False, "BN-API-03", "raises", f"got an output, expected an error for BatchNorm{dims}d(3) on {shape}", severity="invalid-accepted")


_VALID = {2: (2, 3), 3: (2, 3, 2), 4: (2, 3, 2, 2), 5: (2, 3, 1, 2, 2)}  # ndim -> a shape with C = 3


@pytest.mark.clause("BN-API-03")
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dims,ndim", [(d, r) for d in (1, 2, 3) for r in BATCHNORM_RANKS[d]])
def test_accepts_every_valid_rank(impl, dims, ndim, training):
    """BatchNorm1d accepts (N, C) and (N, C, L), BatchNorm2d (N, C, H, W), BatchNorm3d (N, C, D, H, W)
    with C = num_features, in training and eval, and returns an output of the input's shape."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    shape = _VALID[ndim]
    layer = impl.batchnorm(dims, 3)
    layer.train(training)
    x = inputs.channels(ndim, shape, "float32")
    try:
        out = layer.forward(x, dtype="float32")
    except NotProvided:  # what the implementation cannot express is not a failure
        raise
    except Exception as e:  # noqa: BLE001
        ph.check(False, "BN-API-03", "accepts", f"got {type(e).__name__}: {e}, expected an output for "
                 f"BatchNorm{dims}d(3) on {shape} (training={training})", severity="exception")
        return
    ph.held("BN-API-03", "accepts")
    ph.assert_shape(out.y.shape, shape, "BN-API-03", f"BatchNorm{dims}d(3) on {shape} (training={training})")


@pytest.mark.clause("BN-API-03")
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dims,shape", [(1, (4, 5)), (2, (3, 5, 2, 2)), (3, (2, 5, 1, 2, 2))])
def test_stateless_layer_with_another_channel_count(impl, dims, shape, training):
    """BN-API-03, stateless-channels: BatchNormNd(3, affine=False, track_running_stats=False) holds no
    per-channel tensor, so a C = 5 input may raise (ValueError or RuntimeError) or compute; torch 2.13.0
    computes, and what it computes must then be BN-NOTRACK-01's batch-statistics normalisation of the
    input's own 5 channels (tolerance: tolerances.bn_train_output, as BN-NOTRACK-01)."""
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    kind = f"BatchNorm{dims}d"
    if not (impl.expresses(kind, affine=False) and impl.expresses(kind, track_running_stats=False)):
        raise NotProvided(f"{impl.name}: {kind} has no affine=False, track_running_stats=False")
    layer = impl.batchnorm(dims, 3, affine=False, track_running_stats=False)
    layer.train(training)
    x = inputs.channels(11, shape, "float64")
    layer.to("float64")
    what = f"{kind}(3, affine=False, track_running_stats=False) on {shape}, training={training}"
    try:
        out = layer.forward(x, dtype="float64")
    except (ValueError, RuntimeError):
        ph.held("BN-API-03", "stateless-channels")
        return
    except NotProvided:
        raise
    except Exception as e:  # noqa: BLE001
        ph.check(False, "BN-API-03", "error-type", f"got {type(e).__name__}: {e}, expected ValueError or RuntimeError "
                 f"or an output [{what}]", severity="invalid-accepted")
        return
    eps = conventions.of(impl).attribute(1e-5)  # as the layer stores it
    atol, _ = tol.bn_train_output(x, None, None, eps, "float64")
    ph.assert_close(out.y, ref.batchnorm_train_forward(x, eps=eps), atol, "BN-API-03", "stateless-channels", what)
