"""Dropout gradients (DO-GRAD-01, D2-GRAD-01): the forward call's own mask times 1/(1-p)."""
import numpy as np
import pytest
from hypothesis import strategies as st

from dropnorm import checks as ph
from dropnorm import inputs
from dropnorm import strategies as hh
from dropnorm.adapters import NotProvided
from dropnorm.tolerances import dropout_scale_rtol


@pytest.mark.clause("DO-GRAD-01", "D2-GRAD-01")
@hh.given(data=st.data())
def test_gradient_is_mask_times_scale(impl, data):
    """dx = dy * z/(1-p) with z read from the same call's output; dx = dy in eval. Every example
    runs each provided layer in both modes (a drawn choice can leave one out of all examples)."""
    provides = impl.provides
    kinds = [k for k in hh.focused(("Dropout", "Dropout2d")) if provides(k)]
    if not kinds:
        raise NotProvided(f"{impl.name} provides neither Dropout nor Dropout2d")
    shapes = {"Dropout": data.draw(hh.dropout_shapes(1, 4), label="Dropout shape"),
              "Dropout2d": data.draw(hh.dropout_shapes(4, 4), label="Dropout2d shape")}
    p = data.draw(hh.probabilities(0.0, 0.95), label="p")
    drawn_layout = data.draw(hh.layouts(4), label="layout")
    seed = data.draw(hh.seeds(), label="seed")
    for layer_kind in kinds:
        shape = shapes[layer_kind]
        layout = drawn_layout if drawn_layout != "channels_last" or len(shape) >= 3 else "transposed"
        dtype = data.draw(hh.expressed(impl, layer_kind, "dtype", hh.DTYPES), label=f"{layer_kind} dtype")
        clause = "DO-GRAD-01" if layer_kind == "Dropout" else "D2-GRAD-01"
        x = inputs.nonzero(seed, shape, dtype)
        dy = inputs.nonzero(seed + 1, shape, dtype)
        for training in (True, False):
            layer = impl.dropout(p=p) if layer_kind == "Dropout" else impl.dropout2d(p=p)
            layer.train(training)
            impl.seed(seed)
            out = layer.forward_backward(x, dy, dtype=dtype, layout=layout)
            what = f"{layer_kind}(p={p}) backward, training={training}, {dtype}, {layout}"
            if not training:
                ph.assert_equal(out.dx, dy, clause, "eval-identity", what)
                continue
            mask = ph.read_mask(out.y)
            expected = np.where(mask, dy / (1 - p), 0.0) if p < 1 else np.zeros_like(dy)
            ph.assert_close(out.dx, expected, dropout_scale_rtol(dtype) * np.abs(expected), clause,
                            "mask-times-scale", what)
