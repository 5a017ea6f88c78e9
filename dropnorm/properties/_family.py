"""Helpers for the rest of the dropout family (issue 15): construction by kind, channel-dropout
shapes, the alpha-dropout read-back (AD-TRAIN-01) with its derived tolerance, and the checks that several
dropout kinds share: rejecting a bad p at construction (DO-API-01 and the clauses "as DO-API-01"), reading
the generator state, and the eval identity (AD-EVAL-01, D2-EVAL-01).

Not a test module: the property tests of test_dropout2d.py, test_dropout_grad.py, test_dropout_modes.py,
test_dropout_stats.py, test_channel_dropout_ranks.py and test_alpha_dropout.py use it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from dropnorm.suite import checks as ph
from dropnorm.adapters import NotProvided
from dropnorm.spec.dtypes import UNIT_ROUNDOFF, round_to
from dropnorm.spec.kinds import CHANNEL_RANKS, FACTORY
from dropnorm.reference.dropout import ALPHA_PRIME, alpha_dropout_constants


def construct(impl, kind: str, **kwargs):
    """impl's layer of `kind` (a dropout kind: Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout)."""
    if kind.startswith("BatchNorm"):
        raise ValueError(f"construct() builds dropout kinds; {kind} needs impl.batchnorm(dims, ...)")
    return getattr(impl, FACTORY[kind])(**kwargs)


def provided(impl, kinds) -> list:
    """The kinds among `kinds` that impl provides, narrowed to the run's focus; NotProvided if none."""
    from dropnorm.suite import strategies as hh
    ok = [k for k in hh.focused(kinds) if impl.provides(k)]
    if not ok:
        raise NotProvided(f"{impl.name} provides none of {list(kinds)}")
    return ok


def channel_shape(kind: str, n: int, c: int, sides, batched: bool = True) -> tuple:
    """A channel-dropout input of `kind`'s batched (N, C, *spatial) or no-batch (C, *spatial) rank;
    spatial sizes taken from `sides` (cycled)."""
    rank = CHANNEL_RANKS[kind]["batched" if batched else "unbatched"]
    if rank is None:
        raise ValueError(f"{kind} documents no no-batch input")
    k = rank - (2 if batched else 1)
    sides = list(sides) or [1]
    spatial = tuple(sides[i % len(sides)] for i in range(k))
    return ((n, c) if batched else (c,)) + spatial


# ------------------------------------------------------------------ construction, RNG state, eval
BAD_P = {"negative": -0.1, "above-one": 1.1, "infinite": math.inf, "nan": math.nan}  # the API-01/-02 conditions


def names_argument(message: str, *names: str) -> bool:
    """Whether an error message names one of the arguments `names` as a word (DO-API-02, D2-API-02,
    AD-API-02, BN-API-01, BN-API-02 condition message): word boundaries on both sides, case-insensitive,
    so that "supported" or "expected" does not name p and "steps" does not name eps. A name ending in
    "*" is a prefix ("probabilit*": probability, probabilities)."""
    import re
    words = "|".join(re.escape(n[:-1]) + r"\w*" if n.endswith("*") else re.escape(n) for n in names)
    return re.search(rf"(?<![A-Za-z0-9_])(?:{words})(?![A-Za-z0-9])", message, re.IGNORECASE) is not None


def p_names(impl=None) -> tuple:
    """The words that name a dropout probability in an error message: p, "probability", "dropout" (torch:
    "dropout probability has to be between 0 and 1"), and the argument's name in impl's convention
    (spec/conventions.toml dropout_rate: Keras's and Flax's rate, ONNX's ratio)."""
    names = ["p", "probabilit*", "dropout*"]
    if impl is not None:
        from dropnorm.spec import conventions
        try:
            own = conventions.of(impl).dropout_rate.split(" ", 1)[0]
        except Exception:  # noqa: BLE001 - an implementation without a recorded convention: the defaults
            own = ""
        if own.isidentifier() and own not in names:
            names.append(own)
    return tuple(names)


def check_rejects_bad_p(build, kind: str, clause: str, early: str, condition: str, *,
                        not_provided_skips: bool = True, names: tuple = ("p", "probabilit*", "dropout*")) -> None:
    """build(p=BAD_P[condition]) must raise ValueError: DO-API-01 and the clauses "as DO-API-01" (`kind`
    names the layer in the messages) for p < 0, p > 1 and inf (MUST: no output is correct); `early`, their
    SHOULD sibling (DO-API-02, ...), for NaN at construction and for the message naming p (names_argument:
    p, "probability" or "dropout" as a word, or the convention's own name in `names`: p_names(impl)),
    this spec's recommendations. A NotProvided from build makes
    the test not provided; with not_provided_skips=False it is reported as any other wrong exception type."""
    __tracebackhide__ = True
    p = BAD_P[condition]
    judged = early if condition == "nan" else clause
    try:
        build(p=p)
    except ValueError as e:
        ph.held(judged, condition)  # the error came (issue 22: the condition ran)
        ph.check(names_argument(str(e), *names), early, "message",
                 f"got ValueError({str(e)!r}), expected a message naming p (as a word: one of {list(names)}) "
                 f"[{kind}(p={p})]",
                 severity="invalid-accepted")
        return
    except Exception as e:  # noqa: BLE001 - any other type is the failure we report
        if not_provided_skips and isinstance(e, NotProvided):
            raise
        ph.check(False, judged, condition, f"got {type(e).__name__}: {e}, expected ValueError [{kind}(p={p})]",
                 severity="invalid-accepted")
        return
    ph.check(False, judged, condition, f"got a constructed layer, expected ValueError [{kind}(p={p})]",
             severity="invalid-accepted")


def check_kind_rejects_bad_p(impl, kind: str, clause: str, early: str, condition: str) -> None:
    """check_rejects_bad_p for a dropout kind built by construct(); the test is skipped where impl lacks it."""
    __tracebackhide__ = True
    if not impl.provides(kind):
        pytest.skip(f"not provided: {impl.name} has no {kind}")
    check_rejects_bad_p(lambda p: construct(impl, kind, p=p), kind, clause, early, condition, names=p_names(impl))


def check_gradcheck(layer, x, clause: str, second_order: bool, what: str) -> None:
    """layer.gradcheck (or gradgradcheck) in float64 judged on `clause`, condition gradcheck/gradgradcheck:
    a GradcheckError (the analytic and numerical Jacobians differ) is a wrong value; anything else the
    layer's backward raises (not differentiable twice, ...) is an exception; NotProvided passes through."""
    condition = "gradgradcheck" if second_order else "gradcheck"
    try:
        ok = layer.gradcheck(x, second_order=second_order)
    except NotProvided:
        raise
    except Exception as e:  # noqa: BLE001 - the layer's backward may raise anything
        ph.check(False, clause, condition, f"{type(e).__name__}: {str(e)[:2000]} [{what}]",
                 severity="wrong-value" if type(e).__name__ == "GradcheckError" else "exception")
        return
    ph.check(ok, clause, condition, f"{condition} returned False [{what}]")


def rng_state_or_none(impl):
    """impl's global generator state, or None where it cannot be read (NotProvided: onnxruntime)."""
    try:
        return impl.rng_state()
    except NotProvided:
        return None


def check_eval_identity(impl, kind: str, p: float, x, shape, dtype: str, layout: str, seed: int,
                        clause: str) -> None:
    """A fresh `kind`(p) layer in eval mode (impl seeded with seed) returns x bitwise, twice in a row, in
    x's dtype, without touching the global generator state (where readable) or switching itself back to
    training: `clause`'s identity, deterministic, dtype, rng-untouched and mode-kept."""
    __tracebackhide__ = True
    layer = construct(impl, kind, p=p)
    layer.train(False)
    impl.seed(seed)
    before = rng_state_or_none(impl)
    first = layer.forward(x, dtype=dtype, layout=layout)
    second = layer.forward(x, dtype=dtype, layout=layout)
    what = f"{kind}(p={p}).eval(), {shape}, {dtype}, {layout}"
    ph.assert_equal(first.y, x, clause, "identity", what)
    ph.assert_equal(second.y, first.y, clause, "deterministic", what + ", twice")
    ph.assert_dtype(first.dtype, dtype, clause, what)
    if before is not None:
        ph.check(impl.rng_state() == before, clause, "rng-untouched",
                 f"got a changed global RNG state, expected it untouched [{what}]", severity="wrong-state")
    ph.check(not layer.training, clause, "mode-kept", f"the layer switched itself back to training [{what}]", severity="wrong-state")


# ------------------------------------------------------------------ alpha dropout
# Inputs for the read-back: |x| in [0.5, 1.5) with random signs, so |x - alpha'| >= 0.258 and the kept
# value a x + b lies at least 0.258 a from the dropped value a alpha' + b (a >= 1 for every p).
ALPHA_X_LO, ALPHA_X_HI = 0.5, 1.5


def alpha_inputs(seed: int, shape, dtype: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mag = rng.uniform(ALPHA_X_LO, ALPHA_X_HI, size=shape)
    sign = np.where(rng.random(size=shape) < 0.5, -1.0, 1.0)
    out = round_to(sign * mag, dtype)
    assert np.all(np.abs(out - ALPHA_PRIME) >= 0.25)  # the read-back relies on it
    return out


def alpha_atol(x, p: float, dtype: str) -> np.ndarray:
    """Absolute tolerance of an alpha-dropout output element computed in `dtype` (AD-TRAIN-01).

    ATen computes noise = z (exact), noise * a (rounds a: u|a|), b = (z - 1) * (alpha a) + alpha a p
    (rounds alpha a and the sum: u|a alpha'| + u|b|, or u|b| alone where z = 1), x * noise (u|a x|) and
    the final sum (u|y| <= u(|a x| + |b|) or u|a alpha' q|): per element at most
    u (2|a x| + |a alpha'| + 2|b|) + O(u^2). 4u (|a x| + |a alpha'| + |b|) covers that with room for
    another order of the same operations (a (x z + alpha' (1 - z)) + b: five roundings of terms no
    larger than these), and low-precision dtypes computed in float32 first add 2 u(float32) of the
    same magnitudes. It stays below half the separation of the kept and dropped values,
    a |x - alpha'| >= 0.258 a: in bfloat16 4u (1.5 + 1.76 + 1.76) a = 0.078 a (so the nearer value
    classifies every element exactly)."""
    a, b = alpha_dropout_constants(p)
    u = UNIT_ROUNDOFF[dtype] + (2 * UNIT_ROUNDOFF["float32"] if dtype in ("float16", "bfloat16") else 0.0)
    return 4 * u * (np.abs(a * np.asarray(x, np.float64)) + abs(a * ALPHA_PRIME) + abs(b))


def read_alpha_mask(x, y, p: float) -> np.ndarray:
    """The keep mask of an alpha-dropout training output (0 < p < 1): kept where y is nearer to a x + b
    than to a alpha' + b (exact for alpha_inputs within alpha_atol; NaN counts as kept)."""
    a, b = alpha_dropout_constants(p)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return ~(np.abs(y - (a * ALPHA_PRIME + b)) < np.abs(y - (a * x + b)))


def assert_alpha_dropout(x, y, p: float, dtype: str, clause: str, what: str, *, channelwise: bool) -> np.ndarray:
    """Every element of a training output is a x + b (kept) or a alpha' + b (dropped) within alpha_atol,
    read back as the nearer of the two; with channelwise (FeatureAlphaDropout), each (n, c) plane of
    (N, C, *) is all kept or all dropped. Returns the mask: per element, or per (n, c) when channelwise.
    For 0 < p < 1 (p = 0 and 1 are AD-EDGE-01)."""
    __tracebackhide__ = True
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ph.assert_shape(y.shape, x.shape, clause, what)
    a, b = alpha_dropout_constants(p)
    kept_value, dropped_value = a * x + b, a * ALPHA_PRIME + b
    # NaN (an implementation that computes inf - inf) counts as kept and fails kept-value below
    kept = read_alpha_mask(x, y, p)
    atol = alpha_atol(x, p, dtype)
    ph.assert_close(np.where(kept, y, 0.0), np.where(kept, kept_value, 0.0), atol, clause, "kept-value",
                    f"{what}; kept: a x + b with a = {a!r}, b = {b!r}")
    ph.assert_close(np.where(kept, 0.0, y), np.where(kept, 0.0, dropped_value), atol, clause, "dropped-value",
                    f"{what}; dropped: a alpha' + b = {dropped_value!r}")
    if not channelwise:
        return kept
    planes = kept.reshape(kept.shape[:2] + (-1,))
    mixed = planes.any(axis=2) & ~planes.all(axis=2)
    if not mixed.any():
        ph.held(clause, "whole-channel")
    else:
        n, c = (int(i) for i in np.argwhere(mixed)[0])
        ph.check(False, clause, "whole-channel",
                 f"got a partly dropped plane at (sample {n}, channel {c}): {int(planes[n, c].sum())} of "
                 f"{planes.shape[2]} kept, expected all or none [{what}]",
                 observed=f"{int(planes[n, c].sum())} of {planes.shape[2]} kept", expected="all or none")
    return planes.all(axis=2)


def compare_layout_run(seen: dict, layout: str, got, expected, t, clause: str, condition: str, what: str) -> None:
    """The contiguous run against the reference (clause/condition). A layout run is BN-LAYOUT-01's
    (condition-layout): against the reference while the contiguous run of that quantity passed, and
    otherwise against the contiguous run's value within 2 t (a correct implementation puts both within t
    of the reference, so they differ by at most 2 t). So a departure the contiguous input shares is
    reported once, as the clause's (measured: torch.compile's half-precision gradient defect had also
    failed BN-LAYOUT-01 on every layout drawn), and a layout that departs from it still fails."""
    if layout == "contiguous":
        ratio = ph.assert_close(got, expected, t, clause, condition, what)
        seen[condition] = (got, ratio <= 1.0)  # NaN ratio: not passed
        return
    base, passed = seen[condition]
    if passed:
        ph.assert_close(got, expected, t, "BN-LAYOUT-01", f"{condition}-{layout}", what)
    else:
        ph.assert_close(got, base, 2 * np.asarray(t), "BN-LAYOUT-01", f"{condition}-{layout}",
                        f"{what}, against the contiguous run, which fails {clause}/{condition}")
