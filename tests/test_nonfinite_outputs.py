"""A dropout output of NaN or inf where the input is finite (issue 25, point 8): the mask read from it
counts such elements as not kept (an output of NaN everywhere is 0 kept, not all kept), and the value
check fails on it (DO-TRAIN-01/scale) rather than skipping it. These tests check dropnorm's tools; the
clause IDs are those the checks are written for."""
import numpy as np
import pytest

from dropnorm.suite import checks as ph


def test_nan_output_reads_as_nothing_kept():
    y = np.array([np.nan, np.inf, 0.0, 2.0])
    assert ph.read_mask(y).tolist() == [False, False, False, True]


def test_nan_output_fails_the_scale_check():
    x = np.full((4, 3), 1.5)
    with pytest.raises(ph.ClauseViolation) as e:
        ph.assert_inverted_dropout(x, np.full_like(x, np.nan), 0.3, "float64", "DO-TRAIN-01", "Dropout(p=0.3)")
    assert e.value.condition == "scale" and "12 of 12 non-finite where the input is finite" in str(e.value)


def test_kept_inf_of_an_inf_input_is_not_invented():
    x = np.array([[np.inf, 1.5]])
    y = np.array([[np.inf, 1.5 / 0.7]])
    ph.assert_inverted_dropout(x, y, 0.3, "float64", "DO-TRAIN-01", "Dropout(p=0.3)")
