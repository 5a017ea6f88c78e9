"""Hypothesis strategies (alias `hh` in the tests): what the spec lets vary.

Every draw in a test is labelled (data.draw(..., label=...)) so that the
falsifying example reads like a bug report.
"""
from __future__ import annotations

import functools

import hypothesis
from hypothesis import Phase, settings
from hypothesis import strategies as st

from dropnorm.suite import checks
from dropnorm.adapters.base import BATCHNORM_RANKS, NotProvided
from dropnorm.suite.input_classes import InputClassRejected
from dropnorm.suite import state
from dropnorm.suite.traced import current_trace
from dropnorm.spec.dtypes import DTYPES

LOW_PRECISION = ("float16", "bfloat16")




def grid_or(full, grid):
    """`full`, or where the implementation under test has `parameter_grid` (a compiled path: each new p,
    eps or momentum is a recompile of seconds) a value of `grid`, so that the run compiles a few layer
    configurations and reuses them across its examples. Each grid keeps the strategy's regions (ends,
    middle, values inexact in binary such as 1/3, 0.1, 0.7); what it gives up is stated in
    docs/execution-paths.md ("Constructor grids")."""
    grid = tuple(grid)

    @st.composite
    def draw(draw_):
        return draw_(st.sampled_from(grid) if state.current().grid else full)
    return draw()


def focus() -> str | None:
    """The layer kind this run of the test is about (see given), or None."""
    return state.current().focus


def focused(kinds) -> list:
    """`kinds` narrowed to the run's focus, when the focus is among them."""
    f = state.current().focus
    return [f] if f is not None and f in kinds else list(kinds)


def _kinds_to_cover(impl) -> list:
    """The provided layer kinds of the clauses the running test is marked with."""
    from dropnorm.spec.kinds import LAYER_KINDS
    from dropnorm.spec import clauses
    if impl is None:
        return []
    kinds = []
    for cid in sorted(checks.context().marked):
        for kind in LAYER_KINDS[clauses()[cid].layer]:
            if kind not in kinds and impl.provides(kind):
                kinds.append(kind)
    return kinds


def given(*args, **kwargs):
    """hypothesis.given that starts a fresh trace per example, counts the examples that ran to their
    end, and filters out an example that needs what the implementation does not provide (NotProvided
    raised inside it): the other examples still run, and the reasons are reported with the test.

    Every layer kind the test's clauses apply to is covered for certain, not by chance: the test runs
    once per provided kind with that kind as its focus (draw_case, provided_kinds and focused() draw
    only it), each run with 1/k of the test's examples (at least one), so the total stays the same.
    An implementation with shrinks_failures False (a compiled path) reports the first failing example
    unshrunk.

    Explicit examples (hypothesis.example) written above hh.given land on the outer function, which
    hypothesis never sees; they are handed on to each run (_given_with). With several kinds they are
    dealt out in turn (kind i runs examples i, i + k, ...), so the test runs each of them once, as with one
    kind: the false-alarm budget of dropnorm/spec/stats.py counts them once (tests/test_spec_index.py)."""
    def decorate(test):
        @functools.wraps(test)
        def run_example(*a, **kw):
            current_trace().reset_example()
            ctx = checks.context()
            try:
                result = test(*a, **kw)
            except (NotProvided, InputClassRejected) as e:  # the latter: dropnorm.suite.input_classes
                reason = str(e)
                ctx.not_provided[reason] = ctx.not_provided.get(reason, 0) + 1
                hypothesis.reject()
            ctx.examples += 1
            current_trace().end_example()
            return result
        inner = hypothesis.given(*args, **kwargs)(run_example)

        @functools.wraps(inner)
        def per_kind(*a, **kw):
            __tracebackhide__ = True
            state.current().grid = bool(getattr(kw.get("impl"), "parameter_grid", False))
            kinds = _kinds_to_cover(kw.get("impl"))
            own = getattr(per_kind, "_hypothesis_internal_use_settings", None) or settings.default
            if not getattr(kw.get("impl"), "shrinks_failures", True):
                own = settings(own, phases=[p for p in own.phases if p != Phase.shrink])
            explicit = list(getattr(per_kind, "hypothesis_explicit_examples", ()))
            if len(kinds) <= 1:
                return settings(own)(_given_with(explicit, run_example, args, kwargs))(*a, **kw)
            n = max(1, -(-own.max_examples // len(kinds)))
            ctx = checks.context()
            unexpressed = []
            for i, kind in enumerate(kinds):
                state.current().focus = kind
                ran, filtered = ctx.examples, sum(ctx.not_provided.values())
                try:
                    settings(own, max_examples=n)(_given_with(explicit[i::len(kinds)], run_example, args,
                                                              kwargs))(*a, **kw)
                except hypothesis.errors.Unsatisfiable:
                    # every example of this kind needed what it does not provide (a file's LazyBatchNorm2d that
                    # is torch.nn's while its BatchNorm2d is its own): not provided on this kind, the others run
                    if ctx.examples > ran or sum(ctx.not_provided.values()) == filtered:
                        raise
                    unexpressed.append(kind)
                    ctx.not_provided_kinds.add(kind)  # the report's per-kind status there: not-provided
                finally:
                    state.current().focus = None
            if len(unexpressed) == len(kinds):
                raise NotProvided(f"not provided on any of {', '.join(kinds)}: "
                                  + "; ".join(sorted(ctx.not_provided)[:3]))
        return per_kind
    return decorate


def _given_with(examples, run_example, args, kwargs):
    """hypothesis.given(*args, **kwargs) over run_example, with `examples` (hypothesis Example records
    from the decorated test) added to those run_example already carries (examples written below hh.given,
    on the test itself)."""
    @functools.wraps(run_example)
    def with_examples(*a, **kw):
        return run_example(*a, **kw)
    with_examples.hypothesis_explicit_examples = [*getattr(run_example, "hypothesis_explicit_examples", ()),
                                                  *examples]
    return hypothesis.given(*args, **kwargs)(with_examples)


def expressed(impl, kind: str, name: str, values):
    """The values of option `name` that `impl` can express for layer `kind` (Implementation.expresses),
    as a sampled_from strategy; NotProvided when there is none. dropnorm/properties/test_provided.py reports the rest."""
    ok = [v for v in values if impl.expresses(kind, **{name: v})]
    if not ok:
        raise NotProvided(f"{impl.name} expresses {kind} with none of {name} in {list(values)}")
    if set(ok) == {True, False}:
        return st.booleans()  # the same draws as before options were filtered
    return st.sampled_from(ok)


def provided_kinds(impl, kinds):
    """The layer kinds among `kinds` that `impl` provides, narrowed to the run's focus (a sampled_from
    strategy)."""
    provides = impl.provides
    ok = [k for k in focused(kinds) if provides(k)]
    if not ok:
        raise NotProvided(f"{impl.name} provides none of {list(kinds)}")
    return st.sampled_from(ok)


def assume_expressed(impl, kind: str, **options) -> None:
    """Reject an example whose options `impl` cannot express (for draws made by @given arguments)."""
    hypothesis.assume(impl.expresses(kind, **options))


def seeds():
    return st.integers(0, 2 ** 32 - 1)


def probabilities(lo: float = 0.0, hi: float = 1.0):
    """p in [lo, hi], with the endpoints and awkward values (1/3, near 0 and 1) favoured."""
    specials = [x for x in (0.0, 1.0, 1 / 3, 0.1, 0.9, 1e-3, 0.999) if lo <= x <= hi]
    grid = sorted({lo, hi, *specials, *(x for x in (0.5, 0.7) if lo <= x <= hi)})
    return grid_or(st.one_of(st.sampled_from(specials), st.floats(lo, hi, allow_nan=False)), grid)


def keep_probabilities():
    """p for the statistical tests: all of [P_MIN, 1 - P_MIN] (dropnorm.spec.stats.P_MIN = 1e-4; p = 0
    and 1 exactly have clauses of their own), stratified so that every run tries the ends
    ([1e-4, 0.02] and [0.98, 1 - 1e-4]), the neighbourhood of 0.5 ([0.45, 0.55], where a swap of
    p and 1-p hides: the other p values of the same run catch it) and the whole interval; the
    statistical tests also run explicit examples at 0.5, 0.47, 0.0015 and 0.999."""
    from dropnorm.spec.stats import P_MIN
    specials = [0.5, 1e-3, 0.999, 0.01, 0.99, 0.2, 0.8]
    full = st.one_of(st.floats(P_MIN, 1 - P_MIN), st.floats(P_MIN, 0.02), st.floats(0.98, 1 - P_MIN),
                     st.floats(0.45, 0.55), st.sampled_from(specials))
    return grid_or(full, [P_MIN, 1 - P_MIN, 0.47, 1 / 3, *specials])


def dtypes(allowed=DTYPES):
    return st.sampled_from(tuple(allowed))


def layout_names(ndim: int) -> list:
    """Every layout of an ndim-dimensional input, contiguous first."""
    return ["contiguous", "transposed", "strided"] + (["channels_last"] if ndim >= 3 else [])


def layouts(ndim: int):
    return st.sampled_from(layout_names(ndim))


def strided_layouts(ndim: int):
    """The layouts other than contiguous, for a test that runs the contiguous input first anyway: every
    example then also runs a strided one. A drawn "contiguous" there would leave the layout's conditions
    unrun on a kind whenever all its few examples drew it (issue 22, per-condition coverage: 1 in 16 runs
    of a channel kind's 3 quick examples, the first of which is always hypothesis's simplest)."""
    return st.sampled_from(layout_names(ndim)[1:])


def dropout_shapes(min_dims: int = 1, max_dims: int = 4, max_side: int = 7):
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def bn_shapes(dims: int, min_n: int = 2, max_side: int = 5, max_channels: int = 4):
    """(N, C, *spatial) for BatchNorm{dims}d with n = N * prod(spatial) >= min_n."""
    @st.composite
    def shapes(draw):
        ndim = draw(st.sampled_from(BATCHNORM_RANKS[dims]))
        c = draw(st.integers(1, max_channels))
        rest = draw(st.lists(st.integers(1, max_side), min_size=ndim - 1, max_size=ndim - 1))
        n_values = 1
        for s in rest:
            n_values *= s
        hypothesis.assume(n_values >= min_n)
        return (rest[0], c) + tuple(rest[1:])
    return shapes()


def bn_dims():
    return st.sampled_from((1, 2, 3))


def eps_values():
    """eps log-uniform in [1e-6, 1]: large eps makes its placement visible."""
    return grid_or(st.floats(-6.0, 0.0).map(lambda e: float(10.0 ** e)), [1e-6, 1e-5, 1e-3, 0.1, 1.0])


def momenta(allow_none: bool = True):
    m = grid_or(st.one_of(st.sampled_from([0.0, 1.0, 0.1]), st.floats(0.0, 1.0)), [0.0, 0.1, 0.7, 1.0])
    return st.one_of(m, st.none()) if allow_none else m  # shrinks towards a number, not None


def stat_settings():
    """Settings for a statistical test: at most stats.STAT_MAX_EXAMPLES examples, so
    the Bonferroni budget of dropnorm/spec/stats.py holds in every profile. No shrinking: each
    example draws hundreds of thousands of elements, and a smaller p or seed makes the
    failure no clearer; the first failing example is reported as it is."""
    from hypothesis import Phase

    from dropnorm.spec.stats import STAT_MAX_EXAMPLES
    return settings(max_examples=min(settings.default.max_examples, STAT_MAX_EXAMPLES),
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])


def scale_exponent() -> int:
    """The largest dropout mask of the scale tests (dropnorm/properties/test_dropout_dependence.py) is
    2^scale_exponent() values: 22 in the quick profile (8 examples per test or fewer), 24 in ci and thorough."""
    return 22 if settings.default.max_examples <= 8 else 24
