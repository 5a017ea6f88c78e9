"""Drawing a randomized BatchNorm case: everything the spec lets vary, labelled.

Used by the BatchNorm test modules: dims among those the implementation
provides, options among those it expresses, shape, eps, momentum (None too), affine, track_running_stats, random
gamma/beta and running statistics (so g*(x+b) differs from g*x+b), dtype and
layout, and the input's per-channel location and spread.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm import reference as ref
from dropnorm.spec import conventions
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.spec import tolerances as tol
from dropnorm.adapters.base import BATCHNORM_RANKS, NotProvided

# Occasionally large cases (issue 14): batch up to 64, channels up to 16, spatial sides up to 32,
# drawn in one example out of LARGE_ONE_IN; the total is kept to LARGE_MAX_VALUES values and a
# channel to LARGE_MAX_N (so that a ci run stays within seconds on two cores).
LARGE_ONE_IN = 10
LARGE_MAX_VALUES = 1 << 17
LARGE_MAX_N = 1 << 16


def large_shape(dims: int, data, *, min_n: int = 2) -> tuple:
    """(N, C, *spatial) with N <= 64, C <= 16, sides <= 32, at most LARGE_MAX_VALUES values and
    LARGE_MAX_N values per channel: the largest side is halved until it fits."""
    ndim = data.draw(st.sampled_from(BATCHNORM_RANKS[dims]), label="large rank")
    n_batch = data.draw(st.integers(1, 64), label="large N")
    c = data.draw(st.integers(1, 16), label="large C")
    sides = [data.draw(st.integers(1, 32), label="large side") for _ in range(ndim - 2)]
    rest = [n_batch] + sides
    while int(np.prod(rest)) * c > LARGE_MAX_VALUES or int(np.prod(rest)) > LARGE_MAX_N:
        i = int(np.argmax(rest))
        rest[i] = max(1, rest[i] // 2)
    if int(np.prod(rest)) < min_n:
        rest[0] = max(rest[0], min_n)
    return (rest[0], c) + tuple(rest[1:])


# Long batches (issue 22): chunked and two-stage reductions go wrong only past a chunk of the batch
# (64 samples) or a block of values (4096 per channel), where the shapes above stop. LONG_N lists batch
# sizes on both sides of those edges; long_shape keeps C <= 3 and spatial sides <= 2 (<= 5 for the
# BatchNorm1d length, so that 1000 * 5 = 5000 values cross the 4096 block), at most 4097 * 3 * 8 values.
LONG_N = (65, 127, 128, 129, 1000, 4096, 4097)


def long_shape(dims: int, n_batch: int, data) -> tuple:
    ndim = data.draw(st.sampled_from(BATCHNORM_RANKS[dims]), label="long rank")
    c = data.draw(st.integers(1, 3), label="long C")
    side = 5 if dims == 1 else 2
    return (n_batch, c) + tuple(data.draw(st.integers(1, side), label="long side") for _ in range(ndim - 2))


@dataclass(frozen=True)
class Domain:
    """Where in the input domain a case's values lie (dropnorm.suite.inputs.domain)."""
    zeros: str = "none"
    repeated: bool = False
    trend: bool = False
    magnitude: int = 0

    @property
    def structured(self) -> bool:
        """Zeros or repeated values make a sum add equal terms (the deviations -mu of the zeros, the
        levels of repeated values), whose rounding errors need not be independent: its bounds take
        the worst case (dropnorm/spec/tolerances.py header, probabilistic=False), as for a constant channel."""
        return self.zeros != "none" or self.repeated

    def describe(self) -> str:
        parts = [f"zeros={self.zeros}"] if self.zeros != "none" else []
        parts += ["repeated values"] * self.repeated + ["trend along the batch"] * self.trend
        parts += [f"channel magnitudes 2^+-{abs(self.magnitude)}"] if self.magnitude else []
        return ", ".join(parts) or "plain"


def input_domains(dtype: str):
    """Domain draws: every part shrinks to the plain channels() input."""
    return st.builds(Domain, zeros=st.sampled_from(inputs.ZERO_KINDS), repeated=st.booleans(), trend=st.booleans(),
                     magnitude=st.integers(-inputs.MAGNITUDE_EXP[dtype], inputs.MAGNITUDE_EXP[dtype]))


@dataclass
class BNCase:
    layer: object
    dims: int
    shape: tuple
    eps: float
    momentum: float | None
    affine: bool
    track: bool
    dtype: str
    layout: str
    seed: int
    x: np.ndarray
    weight: np.ndarray | None
    bias: np.ndarray | None
    running_mean: np.ndarray | None
    running_var: np.ndarray | None
    param_dtype: str
    domain: Domain | None = None   # None: the plain channels() input of draw_case(domain=False)

    def describe(self) -> str:
        where = "" if self.domain is None else f" ({self.domain.describe()})"
        return (f"BatchNorm{self.dims}d(eps={self.eps:.3g}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track}), x {self.shape} {self.dtype} {self.layout}{where}")

    @property
    def structured(self) -> bool:
        return self.domain is not None and self.domain.structured

    def another_input(self, seed: int) -> np.ndarray:
        """A further input of the case's shape and dtype, from the case's domain."""
        if self.domain is None:
            return inputs.channels(seed, self.shape, self.dtype)
        return inputs.domain(seed, self.shape, self.dtype, **vars(self.domain))

    def fresh(self, impl, **overrides):
        """A new layer with the case's constructor arguments, dtype and state, never called: a run on it
        sees no state left by another run (so a failure is blamed on the first check that sees it)."""
        kwargs = dict(eps=self.eps, momentum=self.momentum, affine=self.affine, track_running_stats=self.track)
        kwargs.update(overrides)
        layer = impl.batchnorm(self.dims, self.shape[1], **kwargs)
        if self.param_dtype == "float64":
            layer.to("float64")
        if self.affine:
            layer.load(weight=self.weight, bias=self.bias)
        if self.track and kwargs["track_running_stats"]:
            layer.load(running_mean=self.running_mean, running_var=self.running_var)
        return layer


def provided_dims(impl) -> list[int]:
    """The BatchNormNd the implementation provides, narrowed to the hypothesis run's focus
    (dropnorm.suite.strategies.given covers every provided kind for certain)."""
    kinds = hh.focused([f"BatchNorm{d}d" for d in (1, 2, 3) if impl.provides(f"BatchNorm{d}d")])
    return [int(k[9]) for k in kinds]


def draw_case(impl, data, *, min_n: int = 2, affine=None, track=None, momentum="draw", dtypes=None,
              layouts=True, offset: float = 3.0, large: bool = True, domain: bool = False, min_c: int = 1,
              n_batch: int | None = None) -> BNCase:
    """Draw a case among what `impl` expresses (Implementation.expresses); a forced
    option it cannot express raises NotProvided when the layer is constructed.
    track="unused": False where the implementation expresses it, else True.
    large=True: one example in LARGE_ONE_IN has a large shape (large_shape); shrinking
    goes to the small shapes. n_batch: a long batch of that many samples (long_shape).
    domain=True: the input is drawn from the whole domain (input_domains, dropnorm.suite.inputs.domain);
    the tolerances of a structured case take the worst-case summation bound (Domain.structured).
    min_c: at least that many channels."""
    dims = data.draw(st.sampled_from(provided_dims(impl)), label="dims")  # the run's focus, if any
    kind = f"BatchNorm{dims}d"
    if n_batch is not None:
        shape = long_shape(dims, n_batch, data)
    else:
        is_large = large and data.draw(st.sampled_from((False,) * (LARGE_ONE_IN - 1) + (True,)), label="large")
        shape = (large_shape(dims, data, min_n=min_n) if is_large
                 else data.draw(hh.bn_shapes(dims, min_n=min_n), label="shape"))
    if shape[1] < min_c:
        shape = (shape[0], data.draw(st.integers(min_c, max(min_c, 4)), label="C")) + shape[2:]
    eps = data.draw(hh.eps_values(), label="eps")
    if momentum == "draw":
        momentum = data.draw(hh.momenta(allow_none=impl.expresses(kind, momentum=None)), label="momentum")
    if affine is None:
        affine = data.draw(hh.expressed(impl, kind, "affine", (True, False)), label="affine")
    if track == "unused":  # the test runs in training only: no running statistics where expressible
        track = not impl.expresses(kind, track_running_stats=False)
    if track is None:
        track = data.draw(hh.expressed(impl, kind, "track_running_stats", (True, False)), label="track_running_stats")
    allowed = [d for d in (dtypes or hh.DTYPES)
               if impl.expresses(kind, dtype=d, param_dtype="float64" if d == "float64" else "float32")]
    if not allowed:
        raise NotProvided(f"{impl.name}: {kind} expresses none of the dtypes {list(dtypes or hh.DTYPES)}")
    dtype = data.draw(hh.dtypes(allowed), label="dtype")
    layout = data.draw(hh.layouts(len(shape)), label="layout") if layouts else "contiguous"
    seed = data.draw(hh.seeds(), label="seed")
    where = data.draw(input_domains(dtype), label="input domain") if domain else None
    return build_case(impl, dims, shape, eps=eps, momentum=momentum, affine=affine, track=track, dtype=dtype,
                      layout=layout, seed=seed, domain=where, offset=offset)


# One shape per input rank a BatchNormNd reads (BATCHNORM_RANKS), none with a size-1 dimension (those meet
# torch's recorded transposed-backward defect, which the drawn tests cover): the fixed grids that run
# conditions hypothesis's few examples per kind reach only by chance on every kind, in every profile.
GRID_SHAPES = {2: (5, 3), 3: (3, 3, 4), 4: (2, 3, 2, 3), 5: (2, 3, 2, 2, 3)}


def grid_dims(impl, rank: int, affine: bool | None = None) -> int:
    """The BatchNormNd that reads inputs of this rank, for a grid case: the test is skipped where the
    implementation does not provide that kind, and the case is not provided where it cannot express affine."""
    dims = next(d for d, ranks in BATCHNORM_RANKS.items() if rank in ranks)
    if dims not in provided_dims(impl):
        pytest.skip(f"not provided: BatchNorm{dims}d")
    if affine is not None and not impl.expresses(f"BatchNorm{dims}d", affine=affine):
        raise NotProvided(f"{impl.name}: BatchNorm{dims}d(affine={affine})")
    return dims


def build_case(impl, dims: int, shape: tuple, *, eps: float, momentum, affine: bool, track: bool, dtype: str,
               layout: str, seed: int, domain: Domain | None = None, offset: float = 3.0) -> BNCase:
    """The layer and input of a case (drawn by draw_case, or fixed by a grid): the layer in the parameter dtype
    (float64 for float64, else float32: BN-DTYPE-01), weight, bias and running statistics from the seed, the
    input of the domain (None: the plain channels() input)."""
    c = shape[1]
    layer = impl.batchnorm(dims, c, eps=eps, momentum=momentum, affine=affine, track_running_stats=track)
    eps = conventions.of(impl).attribute(eps)  # the eps the layer stores (an ONNX attribute is a float32)
    param_dtype = "float64" if dtype == "float64" else "float32"  # BN-DTYPE-01: float64 runs in float64
    if param_dtype == "float64":
        layer.to("float64")
    weight = bias = rm = rv = None
    if affine:
        weight = inputs.vector(seed + 1, c, "float32", loc=1.0, scale=1.0)
        bias = inputs.vector(seed + 2, c, "float32", scale=2.0)  # float32 values: exact in float64 too
        layer.load(weight=weight, bias=bias)
    if track:
        rm = inputs.vector(seed + 3, c, "float32", scale=2.0)
        rv = inputs.vector(seed + 4, c, "float32", positive=True)
        layer.load(running_mean=rm, running_var=rv)
    x = (inputs.channels(seed, shape, dtype, offset=offset) if domain is None
         else inputs.domain(seed, shape, dtype, offset=offset, **vars(domain)))
    return BNCase(layer, dims, shape, eps, momentum, affine, track, dtype, layout, seed, x, weight, bias, rm, rv,
                  param_dtype, domain)


def running_bounds(x, rm, rv, w: float, dtype: str, param_dtype: str, *, variance: str = "unbiased",
                   structured: bool = False):
    """tol.bn_running's bounds on the updated running mean and variance; for a structured input
    (Domain.structured) with the worst-case summation bound in place of the probabilistic one.
    bn_running is linear in the errors of the batch statistics (d rm' <= w d mu + ..., d rv' <= w f d var + ...,
    f = n/(n-1) or 1, all times SAFETY; its docstring), so the worst case adds
    SAFETY w (d mu_worst - d mu) and SAFETY w f (d var_worst - d var), both >= 0."""
    d_rm, d_rv = tol.bn_running(x, rm, rv, w, dtype, param_dtype, variance=variance)
    if structured:
        _, _, n, dm_p, dv_p = tol.bn_stat_errors(x, dtype)
        _, _, _, dm_w, dv_w = tol.bn_stat_errors(x, dtype, probabilistic=False)
        f = n / max(n - 1, 1) if variance == "unbiased" else 1.0
        d_rm = d_rm + tol.SAFETY * w * (dm_w - dm_p)
        d_rv = d_rv + tol.SAFETY * w * f * (dv_w - dv_p)
    return d_rm, d_rv


def expected_running(impl, case: BNCase, x, rm, rv, t: int):
    """The running statistics one training call on x should leave, from rm, rv and counter t, under
    the implementation's convention, and their bounds: (rm', rv', t', d_rm, d_rv)."""
    conv = conventions.of(impl)
    fm = None if case.momentum is None else conv.framework_momentum(case.momentum)
    if conv.zero_debias:   # running statistics = EMA / (1 - d^t) (Haiku; spec/conventions.toml)
        d = 1.0 - fm if conv.momentum_of == "new" else fm
        exp_rm, exp_rv, t = ref.debiased_running_update(rm, rv, t, x, d, variance=conv.running_var)
    else:
        exp_rm, exp_rv, t = ref.running_update(rm, rv, t, x, fm, momentum_of=conv.momentum_of,
                                               variance=conv.running_var)
    w = 1.0 / t if case.momentum is None else conv.new_batch_weight(case.momentum, t)
    d_rm, d_rv = running_bounds(x, rm, rv, w, case.dtype, case.param_dtype, variance=conv.running_var,
                                structured=case.structured)
    if conv.zero_debias:   # plus the framework's division by 1 - d^t (Convention.debias_error)
        r = tol.SAFETY * conv.debias_error(case.momentum, t, case.param_dtype)
        d_rm, d_rv = d_rm + r * np.abs(exp_rm), d_rv + r * np.abs(exp_rv)
    return exp_rm, exp_rv, t, d_rm, d_rv
