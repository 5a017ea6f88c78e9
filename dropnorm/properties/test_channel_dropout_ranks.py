"""Channel dropout beyond Dropout2d (Dropout1d, Dropout3d): the documented ranks (D2-RANK-01), and the
D2-* clauses whose existing tests (test_dropout_modes.py) exercise Dropout2d only: construction
(D2-API-01) and eval mode (D2-EVAL-01) for Dropout1d and Dropout3d. The channel keep rate (D2-TRAIN-03)
and independence (D2-TRAIN-04) of every channel kind are tested in test_dropout_stats.py.

The eval test runs once per provided channel kind (hh.given's focus); the run focused on Dropout2d does
nothing here (test_dropout_modes.py judges Dropout2d), so it adds no check and no cost, and it records no
Dropout2d call, so it cannot pass Dropout2d.
"""

import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm.suite import checks as ph
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.adapters import NotProvided
from dropnorm.spec.kinds import CHANNEL_KINDS, CHANNEL_RANKS
from dropnorm.properties._family import (channel_shape, check_eval_identity, check_kind_rejects_bad_p, construct,
                                         provided)

NEW_KINDS = ("Dropout1d", "Dropout3d")  # the channel kinds test_dropout_modes does not run


def _new_kinds(impl) -> list:
    """The provided kinds of NEW_KINDS this run is about: [] when the run is focused on Dropout2d (judged
    by the Dropout2d tests), NotProvided when impl has none of them."""
    focus = hh.focus()
    if focus is not None and focus not in NEW_KINDS:
        return []
    return provided(impl, NEW_KINDS)


# ------------------------------------------------------------------ D2-RANK-01
def _forms(kind):
    """(label, batched) of the documented input forms D2-RANK-01 checks for `kind`: the batched rank and
    the no-batch rank; Dropout2d's second documented form is (N, C, L), read as batched."""
    forms = [("batched", True)]
    if CHANNEL_RANKS[kind]["unbatched"] is not None:
        forms.append(("no-batch", False))
    else:
        forms.append(("(N, C, L)", True))
    return forms


@pytest.mark.clause("D2-RANK-01")
@hh.given(data=st.data())
def test_documented_ranks(impl, data):
    """A no-batch (C, *spatial) input drops whole channels c (one draw per channel); a batched input
    one per (n, c), Dropout2d's (N, C, L) included; the output has the input's shape. Several channels
    with spatial size >= 2 per channel, so that a draw per (C, first spatial axis) pair shows."""
    kind = data.draw(st.sampled_from(provided(impl, CHANNEL_KINDS)), label="kind")
    p = data.draw(hh.probabilities(0.2, 0.8), label="p")
    n = data.draw(st.integers(1, 3), label="N")
    c = data.draw(st.integers(2, 5), label="C")
    sides = data.draw(st.lists(st.integers(2, 4), min_size=3, max_size=3), label="spatial sizes")
    seed = data.draw(hh.seeds(), label="seed")
    dtype = data.draw(hh.expressed(impl, kind, "dtype", ("float32", "float64")), label="dtype")
    layer = construct(impl, kind, p=p)
    layer.train(True)
    for label, batched in _forms(kind):
        if label == "(N, C, L)":
            shape = (n, c, sides[0])
        else:
            shape = channel_shape(kind, n, c, sides, batched=batched)
        if not impl.expresses(kind, ndim=len(shape)):
            # a framework that documents fewer input forms (Keras's SpatialDropout2D: 4-D only) is held to
            # the forms it documents; the others are reported as not provided, never counted as checked
            ctx = ph.context()
            reason = f"{kind} takes no {len(shape)}-D input ({label})"
            ctx.not_provided[reason] = ctx.not_provided.get(reason, 0) + 1
            continue
        x = inputs.nonzero(seed, shape, dtype)
        impl.seed(seed)
        out = layer.forward(x, dtype=dtype)
        what = f"{kind}(p={p}), {label} input {shape}, {dtype}"
        ph.check(out.y.shape == x.shape, "D2-RANK-01", "shape", f"got shape {out.y.shape}, expected {x.shape} "
                 f"[{what}]", observed=out.y.shape, expected=x.shape, severity="wrong-state")
        kept = ph.read_mask(out.y)
        # the planes that share one draw: (n, c) when batched, c when not
        planes = kept.reshape((shape[0] * shape[1], -1) if batched else (shape[0], -1))
        mixed = planes.any(axis=1) & ~planes.all(axis=1)
        if not mixed.any():
            ph.held("D2-RANK-01", "batched-channel" if batched else "no-batch-channel")
        else:
            i = int(np.argmax(mixed))
            where = f"(sample {i // shape[1]}, channel {i % shape[1]})" if batched else f"channel {i}"
            msg = (f"got a partly dropped {where}: {int(planes[i].sum())} of {planes.shape[1]} values kept, "
                   f"expected all or none [{what}]")
            if batched:
                ph.check(False, "D2-RANK-01", "batched-channel", msg)
            else:
                ph.check(False, "D2-RANK-01", "no-batch-channel", msg)


@pytest.mark.clause("D2-RANK-01")
@hh.given(data=st.data())
def test_undocumented_ranks(impl, data):
    """D2-RANK-01/undocumented-rank: a rank the kind does not document (neither its batched nor its no-batch
    rank, nor Dropout2d's (N, C, L)) raises an error or returns an output of the input's shape whose every
    element is 0 or x/(1-p) (relative tolerance tolerances.dropout_scale_rtol, as DO-TRAIN-01). How the rank
    is read (which axes share a draw) and any warning are not judged: torch 2.13.0 warns on them (measured:
    Dropout2d 2-D, 5-D, 6-D; Dropout3d 1-D, 2-D, 3-D, 6-D) and reads them differently per kind."""
    from dropnorm.spec.tolerances import dropout_scale_rtol
    kind = data.draw(st.sampled_from(provided(impl, CHANNEL_KINDS)), label="kind")
    documented = {CHANNEL_RANKS[kind]["batched"], CHANNEL_RANKS[kind]["unbatched"]} | ({3} if kind == "Dropout2d" else set())
    ndim = data.draw(st.sampled_from([r for r in range(1, 7) if r not in documented]), label="undocumented rank")
    if not impl.expresses(kind, ndim=ndim):
        raise NotProvided(f"{impl.name}: {kind} takes no {ndim}-D input")
    p = data.draw(hh.probabilities(0.2, 0.8), label="p")
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim), label="shape"))
    seed = data.draw(hh.seeds(), label="seed")
    x = inputs.nonzero(seed, shape, "float32")
    layer = construct(impl, kind, p=p)
    layer.train(True)
    impl.seed(seed)
    what = f"{kind}(p={p}), undocumented {ndim}-D input {shape}"
    try:
        out = layer.forward(x, dtype="float32")
    except NotProvided:
        raise
    except Exception:  # noqa: BLE001 - an error is one of the two allowed answers
        ph.held("D2-RANK-01", "undocumented-rank")
        return
    y = np.asarray(out.y, np.float64)
    if y.shape != x.shape:
        ph.check(False, "D2-RANK-01", "undocumented-rank", f"got shape {y.shape}, expected {x.shape} [{what}]",
                 observed=y.shape, expected=x.shape, severity="wrong-state")
        return
    scaled = x / (1 - p)
    ok = (y == 0) | (np.abs(y - scaled) <= dropout_scale_rtol("float32") * np.abs(scaled))
    if ok.all():
        ph.held("D2-RANK-01", "undocumented-rank")
        return
    i = tuple(int(v) for v in np.argwhere(~ok)[0])
    ph.check(False, "D2-RANK-01", "undocumented-rank",
             f"got {float(y[i])!r} at index {i}, expected 0 or x/(1-p) = {float(scaled[i])!r}; {int((~ok).sum())} of "
             f"{y.size} neither [{what}]", observed=f"{float(y[i])!r} at index {i}", expected="0 or x/(1-p)")


# ------------------------------------------------------------------ D2-API-01, D2-EVAL-01
@pytest.mark.clause("D2-API-01", "D2-API-02")
@pytest.mark.parametrize("kind", NEW_KINDS)
@pytest.mark.parametrize("condition", ["negative", "above-one", "infinite", "nan"])
def test_rejects_bad_p(impl, kind, condition):
    """As DO-API-01, for Dropout1d and Dropout3d: ValueError at construction, naming p."""
    check_kind_rejects_bad_p(impl, kind, "D2-API-01", "D2-API-02", condition)


@pytest.mark.clause("D2-EVAL-01")
@hh.given(data=st.data())
def test_eval_is_identity(impl, data):
    """Eval mode returns x bitwise for any p, twice in a row, in the batched and the no-batch rank,
    without touching the RNG or the layer's mode."""
    kinds = _new_kinds(impl)
    p = data.draw(hh.probabilities(), label="p")
    seed = data.draw(hh.seeds(), label="seed")
    for kind in kinds:
        batched = data.draw(st.booleans(), label=f"{kind} batched")
        shape = channel_shape(kind, data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 4), label="C"),
                              data.draw(st.lists(st.integers(1, 3), min_size=3, max_size=3), label="sides"),
                              batched=batched)
        dtype = data.draw(hh.expressed(impl, kind, "dtype", hh.DTYPES), label=f"{kind} dtype")
        layout = data.draw(hh.layouts(len(shape)), label=f"{kind} layout")
        x = inputs.nonzero(seed, shape, dtype)
        check_eval_identity(impl, kind, p, x, shape, dtype, layout, seed, "D2-EVAL-01")
