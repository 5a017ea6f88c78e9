"""The interface checks: whether a registered adapter keeps the contract of base.py, before any clause runs.

check(name) loads the --impl name through the registry and returns the problems found (empty: it passes):
  - the registry: the name loads through load(name) with its adapter module's load(name, device), and the
    Implementation names itself (name, version, target) under a convention spec/conventions.toml has;
  - provided kinds: each builds with its factory's defaults (kinds.FACTORY), runs one training and one eval
    forward that return an Output of float64 values of the input's shape, and reports its state;
  - declared capabilities (base.Implementation.missing / limits): a missing kind is not provided and its
    factory raises NotProvided with the declared reason; a constructor option that expresses() declines
    raises NotProvided at construction with the reason of the Limit that declines it (said once, both ways);
  - the generator: seed() then rng_state() gives bytes (or NotProvided, for a framework that hides it).
It checks the interface only: whether the values are right is what the clauses judge (dropnorm audit).
"""
from __future__ import annotations

import numpy as np

from dropnorm.adapters import load
from dropnorm.adapters.base import Implementation, Layer, NotProvided, Output
from dropnorm.spec.kinds import FACTORY, KINDS

# constructor options whose refusal can be checked at construction (dtype, ndim, training are refused by calls)
PROBES = (dict(inplace=True), dict(p=1.0), dict(p=0.0), dict(momentum=None), dict(momentum=0.0), dict(momentum=1.0),
          dict(affine=False), dict(track_running_stats=False))
SHAPES = {"Dropout": (4, 3), "AlphaDropout": (4, 3), "Dropout1d": (2, 3, 4), "Dropout2d": (2, 3, 4, 4),
          "Dropout3d": (2, 3, 2, 2, 2), "FeatureAlphaDropout": (2, 3, 4, 4), "BatchNorm1d": (4, 3),
          "BatchNorm2d": (4, 3, 2, 2), "BatchNorm3d": (4, 3, 2, 2, 2)}
STATE_KEYS = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked", "param_dtype"}


def build(impl: Implementation, kind: str, **options) -> Layer:
    """A layer of `kind` from its factory: BatchNorm{d}d with 3 channels, the others with their defaults."""
    if kind.startswith("BatchNorm"):
        return impl.batchnorm(int(kind[9]), 3, **options)
    return getattr(impl, FACTORY[kind])(**options)


def _forward(layer: Layer, kind: str, training: bool) -> list[str]:
    layer.train(training)
    if layer.training is not training:
        return [f"{kind}: train({training}) left training={layer.training!r}"]
    x = 1.0 + np.arange(np.prod(SHAPES[kind]), dtype=np.float64).reshape(SHAPES[kind]) / 8
    out = layer.forward(x, dtype="float32")
    if not isinstance(out, Output):
        return [f"{kind}: forward returned {type(out).__name__}, not an Output"]
    problems = []
    for what in ("y", "x_after"):
        v = getattr(out, what)
        if not (isinstance(v, np.ndarray) and v.dtype == np.float64 and v.shape == x.shape):
            problems.append(f"{kind}: forward's {what} is not float64 values of shape {x.shape} "
                            f"({type(v).__name__} {getattr(v, 'dtype', '')} {getattr(v, 'shape', '')})")
    return problems


def _provided(impl: Implementation, kind: str) -> list[str]:
    try:
        layer = build(impl, kind)
    except NotProvided as e:
        return [f"{kind}: provided, but its factory's defaults raise NotProvided: {e}"]
    problems = [] if layer.kind == kind else [f"{kind}: the factory built a layer of kind {layer.kind!r}"]
    for training in (True, False):
        try:
            problems += _forward(layer, kind, training)
        except NotProvided:
            if training:  # a path may run a kind in eval mode only (expresses(kind, training=True) says so)
                problems += [] if not impl.expresses(kind, training=True) else [
                    f"{kind}: expresses training=True but its training forward raised NotProvided"]
    state = layer.state()
    if not isinstance(state, dict) or set(state) != STATE_KEYS:
        problems.append(f"{kind}: state() keys {sorted(state) if isinstance(state, dict) else state!r}, "
                        f"expected {sorted(STATE_KEYS)}")
    return problems


def _declared(impl: Implementation, kind: str) -> list[str]:
    """What expresses() declines for a constructor option, the factory refuses with the declared reason."""
    problems = []
    for options in PROBES:
        if any(k in ("inplace", "p") for k in options) != (not kind.startswith("BatchNorm")):
            continue  # dropout keywords for dropouts, BatchNorm keywords for BatchNorms
        if impl.expresses(kind, **options):
            continue
        lim = impl.limit(kind, **options)
        try:
            build(impl, kind, **options)
        except NotProvided as e:
            if lim is not None and str(e) != lim.message(kind, options):
                problems.append(f"{kind} {options}: raised NotProvided({e}), not the declared reason "
                                f"({lim.message(kind, options)})")
        except Exception:  # noqa: BLE001 - a refused value (p=1 outside a framework's domain) may raise its own error
            if lim is not None:
                problems.append(f"{kind} {options}: declared not expressible ({lim.message(kind, options)}) but "
                                "raised something other than NotProvided")
        else:
            if lim is not None:
                problems.append(f"{kind} {options}: declared not expressible ({lim.message(kind, options)}) but "
                                "it constructs")
    return problems


def check(name: str) -> list[str]:
    """The problems of the adapter registered as `name` (module docstring); [] where it passes."""
    from dropnorm.spec import SpecError, conventions

    impl = load(name)
    problems = []
    if not isinstance(impl, Implementation):
        return [f"load({name!r}) returned {type(impl).__name__}, not an Implementation"]
    for attr in ("name", "version", "target"):
        if not isinstance(getattr(impl, attr, None), str) or not getattr(impl, attr):
            problems.append(f"Implementation.{attr} is not a non-empty string")
    try:
        conventions.get(impl.convention)
    except SpecError:
        problems.append(f"convention {impl.convention!r} is not in spec/conventions.toml")
    for kind in KINDS:
        if kind in impl.missing:
            if impl.provides(kind):
                problems.append(f"{kind}: declared missing but provides() says it is provided")
            try:
                build(impl, kind)
                problems.append(f"{kind}: declared missing ({impl.missing[kind]}) but its factory builds it")
            except NotProvided as e:
                if str(e) != impl.missing[kind]:
                    problems.append(f"{kind}: missing, but its factory's reason {str(e)!r} is not the declared one")
        elif impl.provides(kind):
            problems += _provided(impl, kind) + _declared(impl, kind)
    if not any(impl.provides(k) for k in KINDS):
        problems.append("provides no layer kind at all")
    impl.seed(1)
    try:
        if not isinstance(impl.rng_state(), bytes):
            problems.append("rng_state() does not return bytes")
    except NotProvided:
        pass
    return problems
