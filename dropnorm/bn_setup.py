"""Drawing a randomized BatchNorm case: everything the spec lets vary, labelled.

Used by the BatchNorm test modules: dims among those the implementation
provides, options among those it expresses, shape, eps, momentum (None too), affine, track_running_stats, random
gamma/beta and running statistics (so g*(x+b) differs from g*x+b), dtype and
layout, and the input's per-channel location and spread.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from dropnorm import conventions, inputs
from dropnorm import strategies as hh
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

    def describe(self) -> str:
        return (f"BatchNorm{self.dims}d(eps={self.eps:.3g}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track}), x {self.shape} {self.dtype} {self.layout}")

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
    (dropnorm.strategies.given covers every provided kind for certain)."""
    kinds = hh.focused([f"BatchNorm{d}d" for d in (1, 2, 3) if impl.provides(f"BatchNorm{d}d")])
    return [int(k[9]) for k in kinds]


def draw_case(impl, data, *, min_n: int = 2, affine=None, track=None, momentum="draw", dtypes=None,
              layouts=True, offset: float = 3.0, large: bool = True) -> BNCase:
    """Draw a case among what `impl` expresses (Implementation.expresses); a forced
    option it cannot express raises NotProvided when the layer is constructed.
    track="unused": False where the implementation expresses it, else True.
    large=True: one example in LARGE_ONE_IN has a large shape (large_shape); shrinking
    goes to the small shapes."""
    dims = data.draw(st.sampled_from(provided_dims(impl)), label="dims")  # the run's focus, if any
    kind = f"BatchNorm{dims}d"
    is_large = large and data.draw(st.sampled_from((False,) * (LARGE_ONE_IN - 1) + (True,)), label="large")
    shape = (large_shape(dims, data, min_n=min_n) if is_large
             else data.draw(hh.bn_shapes(dims, min_n=min_n), label="shape"))
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
    x = inputs.channels(seed, shape, dtype, offset=offset)
    return BNCase(layer, dims, shape, eps, momentum, affine, track, dtype, layout, seed, x, weight, bias, rm, rv,
                  param_dtype)
