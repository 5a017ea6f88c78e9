"""Hypothesis profiles shared by the test suite (conftest.py) and `dropnorm audit`.

  quick     8 examples per test, derandomized: a fast smoke audit (well under a minute)
  ci       30 examples per test, derandomized: the default, deterministic in CI
  thorough 300 examples per test, fresh random seeds each run
"""
from __future__ import annotations

from hypothesis import HealthCheck, settings

PROFILES = {
    "quick": dict(max_examples=8, derandomize=True),
    "ci": dict(max_examples=30, derandomize=True),
    "thorough": dict(max_examples=300, derandomize=False),
}
DEFAULT = "ci"


def register() -> None:
    common = dict(deadline=None, database=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
    for name, values in PROFILES.items():
        settings.register_profile(name, **values, **common)
