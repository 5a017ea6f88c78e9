"""Channel dropout (Dropout1d, Dropout2d, Dropout3d) in training: whole channels, exact scale, edge p,
dtype and layout (D2-TRAIN-01, D2-TRAIN-02, D2-EDGE-01, D2-DTYPE-01). Each test runs once per provided
channel-dropout kind (hh.given's focus), on that kind's batched rank: (N, C, L), (N, C, H, W),
(N, C, D, H, W)."""
import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm.suite import checks as ph
from dropnorm.suite import inputs
from dropnorm.suite import strategies as hh
from dropnorm.spec.kinds import CHANNEL_KINDS, spatial_dims
from dropnorm.properties._family import construct, provided


def _shape(data, kind, max_n=4, max_c=5, max_side=5):
    """(N, C, *spatial) of `kind`'s batched rank; at most 3 spatial axes of at most max_side."""
    k = spatial_dims(kind)
    side = max_side if k < 3 else 3
    return data.draw(st.tuples(st.integers(1, max_n), st.integers(1, max_c),
                               *[st.integers(1, side)] * k), label=f"{kind} shape")


@pytest.mark.clause("D2-TRAIN-01", "D2-TRAIN-02", "D2-DTYPE-01")
@hh.given(data=st.data())
def test_whole_channels_scaled(impl, data):
    """Every (n, c) plane is all 0 or all x/(1-p), for (N, C, *spatial) in every dtype and layout."""
    kind = data.draw(st.sampled_from(provided(impl, CHANNEL_KINDS)), label="kind")
    shape = _shape(data, kind)
    p = data.draw(hh.probabilities(0.0, 0.99), label="p")
    dtype = data.draw(hh.expressed(impl, kind, "dtype", hh.DTYPES), label="dtype")
    layout = data.draw(hh.strided_layouts(len(shape)), label="layout")
    seed = data.draw(hh.seeds(), label="seed")
    x = inputs.nonzero(seed, shape, dtype)
    layer = construct(impl, kind, p=p)
    layer.train(True)
    # the contiguous input first: a failure is blamed on D2-DTYPE-01 (layouts) only if it passed
    for run in ("contiguous", layout):
        impl.seed(seed)
        out = layer.forward(x, dtype=dtype, layout=run)
        ph.assert_dtype(out.dtype, dtype, "D2-DTYPE-01", f"{kind}(p={p})")
        what = f"{kind}(p={p}), {shape}, {dtype}, {run}"
        plain = run == "contiguous"
        _assert_whole_channels(out.y, "D2-TRAIN-01" if plain else "D2-DTYPE-01", what)
        ph.assert_inverted_dropout(x, out.y, p, dtype, "D2-TRAIN-02" if plain else "D2-DTYPE-01", what,
                                   channelwise=True)


def _assert_whole_channels(y, clause, what):
    """Each (sample, channel) plane all kept or all dropped (D2-TRAIN-01), checked before the
    scale of the kept planes (D2-TRAIN-02) so that each failure names its own clause."""
    planes = ph.read_mask(y).reshape(y.shape[:2] + (-1,))
    mixed = planes.any(axis=2) & ~planes.all(axis=2)
    ph.check(not mixed.any(), clause, "whole-channel",
             f"got {int(mixed.sum())} partly dropped (sample, channel) planes of {mixed.size}, expected every "
             f"plane all kept or all dropped [{what}]")


@pytest.mark.clause("D2-EDGE-01")
@pytest.mark.parametrize("p", [0.0, 1.0])
@hh.given(data=st.data(), dtype=hh.dtypes(), seed=hh.seeds())
def test_edge_p(impl, p, data, dtype, seed):
    """p = 0 returns x bitwise; p = 1 returns exact zeros."""
    kind = data.draw(st.sampled_from(provided(impl, CHANNEL_KINDS)), label="kind")
    hh.assume_expressed(impl, kind, dtype=dtype)
    shape = _shape(data, kind, max_n=3, max_c=4, max_side=4)
    x = inputs.nonzero(seed, shape, dtype)
    layer = construct(impl, kind, p=p)
    layer.train(True)
    impl.seed(seed)
    y = layer.forward(x, dtype=dtype).y
    ph.assert_equal(y, x if p == 0 else np.zeros_like(x), "D2-EDGE-01", f"p={p}", f"{kind}(p={p}), {dtype}")
