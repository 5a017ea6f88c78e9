"""Global state an implementation must not change, restored after every test.

An implementation under test runs in the suite's process, so it can change
state that later tests rely on. Before each test the suite takes a snapshot;
after it, anything that changed is put back and reported against the
implementation (the test ends in an error naming what changed), so that one
implementation's side effect is never inherited by the next test.

torch's global generator is not here: the tests seed it themselves, and the
clauses that forbid drawing from it (DO-EVAL-02, DO-P0-01, ...) check it.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np

from dropnorm.errors import DropnormError


class GlobalStateChanged(DropnormError, RuntimeError):
    """The implementation changed global state during a test (the state has been restored)."""


def _numpy_rng_digest() -> str:
    state = np.random.get_state()
    return hashlib.sha256(state[1].tobytes() + repr(state[2:]).encode()).hexdigest()[:16]


@dataclass
class Snapshot:
    values: dict
    numpy_rng: tuple
    filters: list

    @classmethod
    def take(cls) -> "Snapshot":
        return cls(values=_values(), numpy_rng=np.random.get_state(), filters=list(warnings.filters))

    def restore_and_diff(self) -> list[str]:
        """Put everything back; return what had changed, one phrase each."""
        changed = []
        now = _values()
        for key, before in self.values.items():
            if now[key] != before:
                changed.append(f"{key} from {before!r} to {now[key]!r}")
                _SETTERS[key](before)
        added = [f for f in warnings.filters if f not in self.filters]
        removed = [f for f in self.filters if f not in warnings.filters]
        blanket = [f for f in added if _blanket(f)]
        if blanket or removed:
            changed.append(f"the warnings filters (added {blanket}, removed {removed})")
            # a library imported during the test may register its own targeted filters: those stay
            warnings.filters[:] = [f for f in added if f not in blanket] + self.filters
            warnings._filters_mutated()
        digest = _numpy_rng_digest()
        np.random.set_state(self.numpy_rng)
        if digest != _numpy_rng_digest():
            changed.append("numpy's global random state (np.random)")
        return changed


def _blanket(f: tuple) -> bool:
    """A filter on every warning of a built-in category, from any module (simplefilter-like): what an
    implementation must not install. A filter for one message, module or library-defined category is
    what importing a library (sympy, say) registers, and is left alone."""
    _action, message, category, module, _lineno = f
    return message is None and module is None and getattr(category, "__module__", "") == "builtins"


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _values() -> dict:
    torch = _torch()
    if torch is None:
        return {}
    return {"torch default dtype": torch.get_default_dtype(),
            "torch grad mode": torch.is_grad_enabled(),
            "torch deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
            "torch number of threads": torch.get_num_threads(),
            "torch anomaly detection": torch.is_anomaly_enabled()}


def _set_threads(n):
    _torch().set_num_threads(n)


_SETTERS = {
    "torch default dtype": lambda v: _torch().set_default_dtype(v),
    "torch grad mode": lambda v: _torch().set_grad_enabled(v),
    "torch deterministic algorithms": lambda v: _torch().use_deterministic_algorithms(v),
    "torch number of threads": _set_threads,
    "torch anomaly detection": lambda v: _torch().set_anomaly_enabled(v),
}


def check_restored(snapshot: Snapshot) -> None:
    changed = snapshot.restore_and_diff()
    if changed:
        raise GlobalStateChanged("the implementation changed global state during this test (restored "
                                 "for the next test): " + "; ".join(changed))
