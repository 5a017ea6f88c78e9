"""Errors isolated by input class (issue 22): an exception on one class of valid inputs fails the clause
that covers that class, and every other clause of the test is judged on the inputs the implementation accepts.

A call on a layer (forward, forward_backward) that raises is described by its *features*: what sets it apart
from the plain case of its kind (float32, contiguous, the kind's first documented rank, default options):
a rank, a dtype, a layout, a backward pass, momentum=None, affine=False, track_running_stats=False, inplace=True,
p = 0 or 1. The set of them is the *input class* blamed. dropnorm.suite.judging then reruns the test with that class
rejected: a later call whose features include every feature of a rejected class (same kind) is filtered out as
hypothesis filters a NotProvided example (InputClassRejected), so the test's other clauses are judged on the
rest. The exception itself is reported as a failure (severity exception) of the covering clause, the one whose
statement promises that class (the table COVERING), with the failing example's reproduction.

A call with no feature (the plain case raises) or of a kind outside the table is not isolated: the test ends
in that error as before. A test whose every example is filtered this way ends in the first error too, never
in not-provided, so isolation cannot hide a failure; a value-dependent error (p = 1, a NaN) blamed on its class
still fails a clause, the covering one.
"""
from __future__ import annotations

from dataclasses import dataclass

from dropnorm.adapters.base import BATCHNORM_RANKS
from dropnorm.errors import DropnormError
from dropnorm.spec.kinds import CHANNEL_RANKS, KIND_LAYER

# the calls whose exceptions are isolated (forward_in and gradcheck have clauses of their own: BN-GRAD-05,
# BN-GRAD-04, D2-GRAD-01 ... whose tests judge their exceptions directly)
ISOLATED = frozenset(("forward", "forward_backward"))


class InputClassRejected(DropnormError):
    """A call of an input class the implementation raised on earlier in this test: filtered out of a hypothesis
    test as a NotProvided example is (dropnorm.suite.strategies.given), but never mistaken for NotProvided, which says
    what the implementation declares it cannot express."""


@dataclass(frozen=True)
class InputClass:
    kind: str
    features: frozenset  # of (name, value)

    def describe(self) -> str:
        return f"{self.kind} with " + ", ".join(f"{k}={v}" for k, v in sorted(self.features, key=str))

    def contains(self, kind: str, features: frozenset) -> bool:
        return kind == self.kind and self.features <= features


def plain_rank(kind: str) -> int | None:
    if kind.startswith("BatchNorm"):
        return BATCHNORM_RANKS[int(kind[9])][0]
    if kind in CHANNEL_RANKS:
        return CHANNEL_RANKS[kind]["batched"]
    return None  # Dropout, AlphaDropout, FeatureAlphaDropout: every rank is plain


def features(kind: str, method: str, args: dict, construct_args: dict) -> frozenset:
    """What sets a call apart from the plain case of its kind (module docstring)."""
    out = set()
    x = args.get("x")
    rank = getattr(x, "ndim", None)
    if rank is not None and plain_rank(kind) not in (None, rank):
        out.add(("rank", rank))
    if args.get("dtype", "float32") != "float32":
        out.add(("dtype", args["dtype"]))
    if args.get("layout", "contiguous") != "contiguous":
        out.add(("layout", args["layout"]))
    if method == "forward_backward":
        out.add(("backward", True))
    if kind.startswith("BatchNorm"):
        if "momentum" in construct_args and construct_args["momentum"] is None:
            out.add(("momentum", None))
        for name in ("affine", "track_running_stats"):
            if construct_args.get(name, True) is False:
                out.add((name, False))
    else:
        if construct_args.get("inplace"):
            out.add(("inplace", True))
        if construct_args.get("p") in (0.0, 1.0):
            out.add(("p", float(construct_args["p"])))
    return frozenset(out)


# feature name -> (clause, condition) per clause layer, in the order a class is blamed: a class with a
# backward pass is the gradient clause's, then the rank, dtype, layout, options (the first feature listed wins)
COVERING = {
    "batchnorm": [("backward", ("BN-GRAD-01", "dx")), ("rank", ("BN-API-03", "accepts")),
                  ("dtype", ("BN-DTYPE-01", "output")), ("layout", ("BN-LAYOUT-01", "output")),
                  ("momentum", ("BN-TRAIN-04", "declared")), ("affine", ("BN-AFFINE-01", "declared")),
                  ("track_running_stats", ("BN-NOTRACK-01", "declared"))],
    "dropout": [("backward", ("DO-GRAD-01", "mask-times-scale")), ("p", ("DO-P1-01", "zeros")),
                ("dtype", ("DO-DTYPE-01", "dtype")), ("layout", ("DO-LAYOUT-01", "shape")),
                ("inplace", ("DO-INPLACE-02", "declared"))],
    "dropout2d": [("backward", ("D2-GRAD-01", "mask-times-scale")), ("p", ("D2-EDGE-01", "p=1.0")),
                  ("rank", ("D2-RANK-01", "no-batch-channel")), ("dtype", ("D2-DTYPE-01", "dtype")),
                  ("layout", ("D2-DTYPE-01", "shape")), ("inplace", ("D2-DTYPE-01", "declared"))],
    "alphadropout": [("backward", ("AD-GRAD-01", "mask-times-a")), ("p", ("AD-EDGE-01", "p=1.0")),
                     ("rank", ("AD-TRAIN-01", "shape")), ("dtype", ("AD-DTYPE-01", "dtype")),
                     ("layout", ("AD-DTYPE-01", "shape")), ("inplace", ("AD-INPLACE-01", "input-holds-output"))],
}
# p = 0 errors belong to the identity clauses
P0 = {"dropout": ("DO-P0-01", "identity"), "dropout2d": ("D2-EDGE-01", "p=0.0"), "alphadropout": ("AD-EDGE-01", "p=0.0")}


def covering(kind: str, feats: frozenset, training: bool) -> tuple[str, str] | None:
    """The (clause, condition) that covers an input class, None where the table has none."""
    layer = KIND_LAYER.get(kind)
    if layer is None:
        return None
    names = {name: value for name, value in feats}
    for name, (clause, condition) in COVERING[layer]:
        if name not in names:
            continue
        if name == "backward" and layer == "batchnorm" and not training:
            return "BN-GRAD-03", "dx"
        if name == "p" and names["p"] == 0.0:
            return P0[layer]
        return clause, condition
    return None


# the order in which minimal() tries to drop features: options and layouts before ranks and dtypes
ORDER = ("backward", "layout", "inplace", "p", "affine", "track_running_stats", "momentum", "dtype", "rank")
PLAIN_OPTIONS = {"momentum": 0.1, "affine": True, "track_running_stats": True, "inplace": False, "p": 0.5}


def _plain_rank_input(kind: str, x):
    """x reshaped to the plain rank of its kind: BatchNorm1d's (N, C, L) as (N L, C); a channel-dropout kind's
    no-batch (C, *spatial) as (1, C, *spatial)."""
    if kind.startswith("BatchNorm"):
        c = x.shape[1]
        return x.swapaxes(1, -1).reshape(-1, c)
    return x[None]


def replay(build, kind: str, method: str, args: dict, construct_args: dict, training: bool, keep: frozenset,
           all_feats: frozenset) -> bool:
    """Whether the call raises when every feature of all_feats outside `keep` is put back to the plain case:
    a fresh layer from build(**constructor arguments) (untraced: the probe is no part of the test's trace)."""
    drop = {name for name, _v in all_feats - keep}
    kw = {k: v for k, v in construct_args.items() if k != "factory"}
    for name in drop & set(PLAIN_OPTIONS):
        kw[name] = PLAIN_OPTIONS[name]
    x, dy = args["x"], args.get("dy")
    if "rank" in drop:
        x = _plain_rank_input(kind, x)
        dy = None if dy is None else _plain_rank_input(kind, dy)
    dtype = "float32" if "dtype" in drop else args.get("dtype", "float32")
    layout = "contiguous" if "layout" in drop else args.get("layout", "contiguous")
    try:
        layer = build(**kw)
        if dtype == "float64" and hasattr(layer, "to"):
            layer.to("float64")
        layer.train(training)
    except Exception:  # noqa: BLE001 - the plain construction itself fails: no evidence either way
        return True
    try:
        if method == "forward_backward" and "backward" not in drop:
            layer.forward_backward(x, dy, dtype=dtype, layout=layout)
        else:
            layer.forward(x, dtype=dtype, layout=layout)
    except Exception:  # noqa: BLE001
        return True
    return False


def minimal(feats: frozenset, raises) -> frozenset | None:
    """A 1-minimal subset of feats on which the call still raises (raises(subset) -> bool), dropping features
    one at a time in ORDER; feats itself where the call with all of them does not raise on a fresh layer (the
    error needed the layer's state: nothing is concluded); None where the plain case raises too (the error is
    not one of an input class: nothing is isolated)."""
    if not raises(feats):
        return feats
    if raises(frozenset()):
        return None
    keep = set(feats)
    for name in ORDER:
        for f in [f for f in keep if f[0] == name]:
            if len(keep) > 1 and raises(frozenset(keep - {f})):
                keep.discard(f)
    return frozenset(keep)


def blamed(calls: list, construct_args: dict, accepted: dict, build=None) -> tuple[InputClass, tuple[str, str], object] | None:
    """(input class, covering (clause, condition), the call) for the latest call of `calls` if it is an isolated
    call that raised with at least one feature, else None. construct_args: layer number -> constructor args;
    accepted: kind -> the features of calls that returned earlier in the test. A feature met in a call that
    returned is not blamed (a rank-3 input that worked with momentum 0.1 leaves momentum=None as the class of a
    rank-3, momentum=None call that raised), unless that clears every feature (then they interact: all blamed)."""
    if not calls:
        return None
    call = calls[-1]
    if call.error is None or call.method not in ISOLATED or call.kind is None:
        return None
    feats = features(call.kind, call.method, call.args, construct_args.get(call.layer, {}))
    if not feats:
        return None
    training = True
    for c in calls:  # the layer's mode at the call: its latest train() before it
        if c.method == "train" and c.layer == call.layer:
            training = bool(c.args.get("mode", True))
    if build is not None:  # the features the error needs, by replaying the call with features dropped
        args = construct_args.get(call.layer, {})
        feats = minimal(feats, lambda keep: replay(build, call.kind, call.method, call.args, args, training, keep,
                                                    feats))
        if feats is None:
            return None
    else:
        feats = frozenset(f for f in feats if f not in accepted.get(call.kind, ())) or feats
    where = covering(call.kind, feats, training)
    if where is None:
        return None
    return InputClass(call.kind, feats), where, call
