"""What an implementation can express (Implementation.expresses), reported one option at a time.

The property tests draw only what an implementation expresses, so an option it
cannot express never shows up there; it shows up here, as skipped "not
provided" under the clause it would be tested by. An option declared as
expressed must also construct and run once in training mode without NotProvided (the
adapter's declaration is checked against its behaviour; a path that runs a layer in eval mode
only, such as torch-export-onnxruntime's BatchNorm, says so with expresses(kind, training=True)).
"""
import numpy as np
import pytest

from dropnorm.suite import checks as ph
from dropnorm.adapters import NotProvided

P = pytest.param
CHANNEL = ("Dropout1d", "Dropout2d", "Dropout3d")
BATCHNORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")


def _id(kind: str, suffix: str) -> str:
    """The case ids of the first kinds stay as they were (Dropout2d-..., BatchNorm-...); the kinds added
    for the per-kind coverage of issue 22 name themselves."""
    if kind == "BatchNorm2d":
        return f"BatchNorm-{suffix}" if suffix else "BatchNorm2d"
    return f"{kind}-{suffix}" if suffix else kind


# every kind of a clause's layer: the declaration is the adapter's, per kind (issue 22)
CASES = [
    P("Dropout", {"inplace": True}, id="Dropout-inplace", marks=pytest.mark.clause("DO-INPLACE-02")),
    P("Dropout", {"p": 1.0}, id="Dropout-p1", marks=pytest.mark.clause("DO-P1-01")),
    *[P(k, {"p": 0.5}, id=k, marks=pytest.mark.clause("D2-TRAIN-01")) for k in CHANNEL],
    *[P(k, {"inplace": True}, id=f"{k}-inplace", marks=pytest.mark.clause("D2-DTYPE-01")) for k in CHANNEL],
    *[P("Dropout", {"dtype": d}, id=f"Dropout-{d}", marks=pytest.mark.clause("DO-DTYPE-01"))
      for d in ("float64", "float32", "float16", "bfloat16")],
    *[P(k, {"dtype": d}, id=f"{k}-{d}", marks=pytest.mark.clause("D2-DTYPE-01"))
      for k in CHANNEL for d in ("float64", "float32", "float16", "bfloat16")],
    *[P(f"BatchNorm{k}d", {}, id=f"BatchNorm{k}d", marks=pytest.mark.clause("BN-TRAIN-01")) for k in (1, 2, 3)],
    *[P(k, {"momentum": None}, id=_id(k, "momentum-None"), marks=pytest.mark.clause("BN-TRAIN-04"))
      for k in BATCHNORMS],
    *[P(k, {"track_running_stats": False}, id=_id(k, "no-running-stats"), marks=pytest.mark.clause("BN-NOTRACK-01"))
      for k in BATCHNORMS],
    *[P(k, {"affine": False}, id=_id(k, "affine-False"), marks=pytest.mark.clause("BN-AFFINE-01"))
      for k in BATCHNORMS],
    *[P(k, {"dtype": d, "param_dtype": "float32"}, id=_id(k, f"{d}-float32-params"),
        marks=pytest.mark.clause("BN-DTYPE-01")) for k in BATCHNORMS for d in ("float32", "float16", "bfloat16")],
    *[P(k, {"dtype": "float64", "param_dtype": "float64"}, id=_id(k, "float64"),
        marks=pytest.mark.clause("BN-DTYPE-01")) for k in BATCHNORMS],
    *[P(k, {"dtype": d, "param_dtype": d}, id=_id(k, f"{d}-params"),
        marks=pytest.mark.clause("BN-DTYPE-02")) for k in BATCHNORMS for d in ("float16", "bfloat16")],
]


SHAPES = {"BatchNorm1d": (2, 2, 4), "BatchNorm2d": (2, 2, 2, 2), "BatchNorm3d": (2, 2, 1, 2, 2),
          "Dropout": (2, 3, 2, 2), "Dropout1d": (2, 3, 4), "Dropout2d": (2, 3, 2, 2), "Dropout3d": (2, 3, 1, 2, 2)}
FACTORY = {"Dropout": "dropout", "Dropout1d": "dropout1d", "Dropout2d": "dropout2d", "Dropout3d": "dropout3d"}


def _run_once(impl, kind, options):
    build = {k: v for k, v in options.items() if k not in ("dtype", "param_dtype")}
    if kind.startswith("BatchNorm"):
        layer = impl.batchnorm(int(kind[9]), 2, **build)
        if options.get("param_dtype", "float32") != "float32":
            layer.to(options["param_dtype"])
    else:
        layer = getattr(impl, FACTORY[kind])(**build)
    layer.train(True)
    x = 1.0 + np.arange(np.prod(SHAPES[kind]), dtype=np.float64).reshape(SHAPES[kind]) / 4
    return layer.forward(x, dtype=options.get("dtype", "float32"))


@pytest.mark.parametrize("kind,options", CASES)
def test_expressed(impl, kind, options, request):
    """Declared options construct and run once; undeclared ones are reported as not provided."""
    clause = request.node.get_closest_marker("clause").args[0]
    if not impl.provides(kind):
        pytest.skip(f"not provided: {impl.name} has no {kind}")
    if not impl.expresses(kind, **options):
        pytest.skip(f"not provided: {impl.name} cannot express {kind} with {options}")
    if not impl.expresses(kind, training=True, **options):  # _run_once runs a training forward
        pytest.skip(f"not provided: {impl.name} cannot run {kind} with {options} in training mode")
    try:
        out = _run_once(impl, kind, options)
    except NotProvided as e:
        ph.check(False, clause, "declared",
                 f"{impl.name} declares {kind} with {options} expressible but raised NotProvided: {e}", severity="exception")
        return
    ph.held(clause, "declared")
    assert out.y.shape == out.x_after.shape


@pytest.mark.clause("BN-TRAIN-01", "BN-TRAIN-02", "BN-TRAIN-05")
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_claims_are_honoured(impl, dims):
    """A BatchNorm constructed with affine=True has a weight and a bias of one value per channel,
    initialised to 1 and 0 (BN-TRAIN-01: y = gamma xhat + beta needs them); with
    track_running_stats=True it keeps running_mean and running_var of one value per channel, initialised
    to 0 and 1 (BN-TRAIN-02), and, under a convention with a counter, num_batches_tracked = 0
    (BN-TRAIN-05). An implementation that accepts the keyword but does not honour it fails here,
    with this evidence, instead of having its examples filtered out as not provided."""
    from dropnorm.spec import conventions
    kind = f"BatchNorm{dims}d"
    if not impl.provides(kind):
        pytest.skip(f"not provided: {impl.name} has no {kind}")
    if not impl.expresses(kind, training=True):  # claims of a training layer, on a path that cannot train it
        pytest.skip(f"not provided: {impl.name} cannot run {kind} in training mode")
    c = 3
    layer = impl.batchnorm(dims, c, affine=True, track_running_stats=True)
    s = layer.state()
    what = f"{kind}({c}, affine=True, track_running_stats=True), as constructed"
    for key, init, clause, condition in (("weight", 1.0, "BN-TRAIN-01", "affine-parameters"),
                                         ("bias", 0.0, "BN-TRAIN-01", "affine-parameters"),
                                         ("running_mean", 0.0, "BN-TRAIN-02", "running-buffers"),
                                         ("running_var", 1.0, "BN-TRAIN-02", "running-buffers")):
        value = s[key]
        ph.check(value is not None and np.shape(value) == (c,), clause, condition,
                 f"got {key} {value!r}, expected {c} values initialised to {init} [{what}]",
                 observed=value, expected=f"{c} x {init}", severity="wrong-state")
        if value is not None and np.shape(value) == (c,):
            ph.assert_equal(value, np.full(c, init), clause, condition, f"initial {key} [{what}]")
    if conventions.of(impl).counter:
        ph.check(s["num_batches_tracked"] == 0, "BN-TRAIN-05", "counter-exists",
                 f"got num_batches_tracked {s['num_batches_tracked']!r}, expected 0: the {conventions.of(impl).name} "
                 f"convention keeps a training-call counter [{what}]",
                 observed=s["num_batches_tracked"], expected=0, severity="wrong-state")
