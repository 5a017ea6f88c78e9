"""Dropout and Dropout2d outside the training math: construction, eval mode, seeding,
in-place contract (DO-API-01, D2-API-01, DO-EVAL-01/02, D2-EVAL-01, DO-SEED-01,
DO-INPLACE-01/02)."""
import itertools

import hypothesis
import pytest
from hypothesis import strategies as st

from dropnorm import checks as ph
from dropnorm import inputs
from dropnorm import strategies as hh
from dropnorm.adapters import NotProvided
from dropnorm.properties._family import check_rejects_bad_p, rng_state_or_none


def _factory(impl, layer):
    return impl.dropout if layer == "Dropout" else impl.dropout2d


def _shape(layer, shape):
    return shape if layer == "Dropout" else (2, 3) + (tuple(shape) + (2, 2))[:2]  # Dropout2d: (N, C, H, W)


def _fit(layout, ndim):
    """The drawn layout, or transposed where channels_last needs more dimensions."""
    return layout if layout != "channels_last" or ndim >= 3 else "transposed"


# The tests below run every provided layer (and every mode) in each example instead of drawing
# one: hypothesis' draws from a two-valued choice can be very uneven, and a layer or mode left out
# of an example set is a defect left undetected.
def _kinds(impl, **options):
    """The provided layer kinds that can express `options`; the example is rejected if none can."""
    provides = impl.provides
    kinds = [k for k in hh.focused(("Dropout", "Dropout2d")) if provides(k)]
    if not kinds:
        raise NotProvided(f"{impl.name} provides neither Dropout nor Dropout2d")
    kinds = [k for k in kinds if impl.expresses(k, **options)]
    hypothesis.assume(kinds)
    return kinds


@pytest.mark.clause("DO-API-01", "DO-API-02")
@pytest.mark.parametrize("condition", ["negative", "above-one", "infinite", "nan"])
def test_dropout_rejects_bad_p(impl, condition):
    """Dropout(p) with p outside [0, 1] raises ValueError at construction (DO-API-01, MUST); NaN at
    construction and the message naming p are DO-API-02 (SHOULD)."""
    check_rejects_bad_p(_factory(impl, "Dropout"), "Dropout", "DO-API-01", "DO-API-02", condition,
                        not_provided_skips=False)


@pytest.mark.clause("D2-API-01", "D2-API-02")
@pytest.mark.parametrize("condition", ["negative", "above-one", "infinite", "nan"])
def test_dropout2d_rejects_bad_p(impl, condition):
    """As DO-API-01, for Dropout2d."""
    check_rejects_bad_p(_factory(impl, "Dropout2d"), "Dropout2d", "D2-API-01", "D2-API-02", condition,
                        not_provided_skips=False)


@pytest.mark.clause("DO-EVAL-01", "DO-EVAL-02", "D2-EVAL-01")
@hh.given(data=st.data())
def test_eval_is_identity_and_leaves_rng(impl, data):
    """Eval mode returns x bitwise for any p, twice in a row, without touching the RNG or the layer."""
    base_shape = data.draw(hh.dropout_shapes(2, 3), label="shape")
    p = data.draw(hh.probabilities(), label="p")
    drawn_layout = data.draw(hh.layouts(4), label="layout")
    seed = data.draw(hh.seeds(), label="seed")
    for layer_kind in _kinds(impl, p=p):
        shape = _shape(layer_kind, base_shape)
        layout = _fit(drawn_layout, len(shape))
        dtype = data.draw(hh.expressed(impl, layer_kind, "dtype", hh.DTYPES), label=f"{layer_kind} dtype")
        clause = "DO-EVAL-01" if layer_kind == "Dropout" else "D2-EVAL-01"
        x = inputs.nonzero(seed, shape, dtype)
        layer = _factory(impl, layer_kind)(p=p)
        layer.train(False)
        impl.seed(seed)
        before = rng_state_or_none(impl)  # None where the generator's state cannot be read: see the replay test below
        first = layer.forward(x, dtype=dtype, layout=layout)
        second = layer.forward(x, dtype=dtype, layout=layout)
        ph.assert_equal(first.y, x, clause, "identity", f"{layer_kind}(p={p}).eval(), {dtype}, {layout}")
        ph.assert_equal(second.y, first.y, clause, "deterministic", f"{layer_kind}(p={p}).eval() twice")
        ph.assert_dtype(first.dtype, dtype, clause, f"{layer_kind}.eval()")
        rng_clause = "DO-EVAL-02" if layer_kind == "Dropout" else "D2-EVAL-01"
        if before is not None:
            ph.check(impl.rng_state() == before, rng_clause, "rng-untouched",
                     f"got a changed global RNG state, expected it untouched [{layer_kind}(p={p}).eval() forward]", severity="wrong-state")
        ph.check(not layer.training, rng_clause, "mode-kept", "the layer switched itself back to training", severity="wrong-state")


@pytest.mark.clause("DO-EVAL-02", "D2-EVAL-01")
@pytest.mark.parametrize("layer_kind", ["Dropout", "Dropout2d"])
@pytest.mark.parametrize("seed", [0, 12345])
def test_eval_consumes_no_random_numbers(impl, layer_kind, seed):
    """Replay: seed(s), train call == seed(s), eval calls, train call. Observes the RNG through
    the masks, so it holds for generators whose state cannot be read (onnxruntime)."""
    if not impl.provides(layer_kind):
        pytest.skip(f"not provided: {layer_kind}")
    clause = "DO-EVAL-02" if layer_kind == "Dropout" else "D2-EVAL-01"
    x = inputs.nonzero(seed, (8, 16, 2, 2), "float32")
    layer = _factory(impl, layer_kind)(p=0.5)
    layer.train(True)
    impl.seed(seed)
    first = layer.forward(x).y
    impl.seed(seed)
    layer.train(False)
    for _ in range(3):
        layer.forward(x)
    layer.train(True)
    again = layer.forward(x).y
    ph.assert_equal(again, first, clause, "rng-untouched", f"{layer_kind}(p=0.5): training masks after seed(s) "
                                                           f"differ once eval calls came in between")


@pytest.mark.clause("DO-SEED-01")
@hh.given(shape=hh.dropout_shapes(), p=hh.probabilities(0.05, 0.95), seed=hh.seeds(), dtype=hh.dtypes())
def test_same_seed_same_mask(impl, shape, p, seed, dtype):
    """seed(s); f(x); seed(s); f(x) gives bitwise identical outputs."""
    hh.assume_expressed(impl, "Dropout", dtype=dtype)
    x = inputs.nonzero(seed, shape, dtype)
    layer = impl.dropout(p=p)
    layer.train(True)
    impl.seed(seed)
    first = layer.forward(x, dtype=dtype).y
    impl.seed(seed)
    second = layer.forward(x, dtype=dtype).y
    ph.assert_equal(second, first, "DO-SEED-01", "replay", f"Dropout(p={p}), seed {seed}, {dtype}")


@pytest.mark.clause("DO-INPLACE-01", "DO-INPLACE-02", "D2-DTYPE-01")
@hh.given(data=st.data())
def test_inplace_contract(impl, data):
    """inplace=False leaves x unchanged and unaliased; inplace=True leaves x holding y.
    Every example runs each provided layer in every expressible (inplace, training) combination."""
    base_shape = data.draw(hh.dropout_shapes(2, 3), label="shape")
    p = data.draw(hh.probabilities(0.05, 0.95), label="p")
    drawn_layout = data.draw(hh.layouts(4), label="layout")
    seed = data.draw(hh.seeds(), label="seed")
    for layer_kind in _kinds(impl):
        shape = _shape(layer_kind, base_shape)
        layout = _fit(drawn_layout, len(shape))
        dtype = data.draw(hh.expressed(impl, layer_kind, "dtype", hh.DTYPES), label=f"{layer_kind} dtype")
        x = inputs.nonzero(seed, shape, dtype)
        inplaces = [v for v in (False, True) if impl.expresses(layer_kind, inplace=v)]
        for inplace, training in itertools.product(inplaces, (True, False)):
            layer = _factory(impl, layer_kind)(p=p, inplace=inplace)
            layer.train(training)
            impl.seed(seed)
            # a copy: the adapter may share x's memory with the tensor, and an in-place write must not
            # reach the x that the checks below compare with
            out = layer.forward(x.copy(), dtype=dtype, layout=layout)
            what = f"{layer_kind}(p={p}, inplace={inplace}), training={training}, {dtype}, {layout}"
            if not inplace:
                clause = "DO-INPLACE-01" if layer_kind == "Dropout" else "D2-DTYPE-01"
                ph.assert_equal(out.x_after, x, clause, "input-unchanged", what)
                if training:
                    ph.check(not out.shares_input_memory, clause, "no-alias",
                             f"got an output sharing the input's memory, expected a new tensor [{what}]", severity="wrong-state")
            elif training:
                ph.assert_equal(out.x_after, out.y, "DO-INPLACE-02", "input-holds-output", what)
