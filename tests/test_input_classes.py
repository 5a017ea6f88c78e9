"""dropnorm.suite.input_classes (issue 22, errors isolated by input class): the features of a call, the clause that
covers a class, and the minimal class an error needs. Tools of the suite, not clauses: no clause marker."""
from __future__ import annotations

import numpy as np
import pytest

from dropnorm.suite import input_classes as ic
from dropnorm.suite.traced import Call


def test_features_name_what_sets_a_call_apart_from_the_plain_case():
    x3 = np.zeros((2, 3, 4))
    assert ic.features("BatchNorm1d", "forward", {"x": np.zeros((2, 3))}, {"momentum": 0.1}) == frozenset()
    got = ic.features("BatchNorm1d", "forward_backward", {"x": x3, "dtype": "float16", "layout": "strided"},
                      {"momentum": None, "affine": False, "track_running_stats": True})
    assert got == {("rank", 3), ("dtype", "float16"), ("layout", "strided"), ("backward", True),
                   ("momentum", None), ("affine", False)}
    assert ic.features("Dropout1d", "forward", {"x": np.zeros((3, 4))}, {"p": 1.0, "inplace": True}) == {
        ("rank", 2), ("p", 1.0), ("inplace", True)}
    assert ic.features("Dropout", "forward", {"x": np.zeros((3, 4, 5))}, {"p": 0.5}) == frozenset()


@pytest.mark.parametrize("kind,feats,training,expected", [
    ("BatchNorm1d", {("rank", 3)}, True, ("BN-API-03", "accepts")),
    ("BatchNorm2d", {("backward", True), ("dtype", "bfloat16")}, False, ("BN-GRAD-03", "dx")),
    ("BatchNorm3d", {("momentum", None)}, True, ("BN-TRAIN-04", "declared")),
    ("Dropout", {("p", 0.0)}, True, ("DO-P0-01", "identity")),
    ("Dropout3d", {("rank", 4)}, True, ("D2-RANK-01", "no-batch-channel")),
    ("FeatureAlphaDropout", {("dtype", "float16")}, True, ("AD-DTYPE-01", "dtype")),
])
def test_the_covering_clause(kind, feats, training, expected):
    assert ic.covering(kind, frozenset(feats), training) == expected


def test_minimal_keeps_only_the_features_the_error_needs():
    rank, none = ("rank", 3), ("momentum", None)
    # raises whenever momentum is None, whatever the rank
    assert ic.minimal(frozenset({rank, none}), lambda keep: none in keep) == {none}
    # raises only on both together: both are the class
    assert ic.minimal(frozenset({rank, none}), lambda keep: keep == {rank, none}) == {rank, none}
    # the plain case raises too: no input class to isolate
    assert ic.minimal(frozenset({rank}), lambda keep: True) is None
    # a fresh layer does not reproduce it (the error needed the layer's state): nothing concluded, all kept
    assert ic.minimal(frozenset({rank, none}), lambda keep: False) == {rank, none}


def test_blamed_replays_the_call_on_fresh_layers():
    """A BatchNorm1d whose forward rejects rank 3 only: a rank-3, float16, momentum=None call that raised is
    blamed on rank 3 alone (the replay without it returns), covered by BN-API-03/accepts."""
    class Layer:
        def __init__(self, **kw):
            self.kw = kw

        def train(self, mode):
            pass

        def to(self, dtype):
            pass

        def forward(self, x, *, dtype="float32", layout="contiguous"):
            if x.ndim == 3:
                raise RuntimeError("rank 3")

    call = Call("forward", 0, "BatchNorm1d", {"x": np.zeros((2, 3, 4)), "dtype": "float16",
                                              "layout": "contiguous"}, error="RuntimeError: rank 3")
    cls, where, _ = ic.blamed([call], {0: {"dims": 1, "num_features": 3, "momentum": None}}, {}, Layer)
    assert cls.features == {("rank", 3)} and where == ("BN-API-03", "accepts")
    assert cls.contains("BatchNorm1d", frozenset({("rank", 3), ("dtype", "float64")}))
    assert not cls.contains("BatchNorm1d", frozenset({("dtype", "float64")}))
    # a call that did not raise, or raised on the plain case, is not isolated
    ok = Call("forward", 0, "BatchNorm1d", {"x": np.zeros((2, 3))})
    assert ic.blamed([ok], {0: {}}, {}, Layer) is None
