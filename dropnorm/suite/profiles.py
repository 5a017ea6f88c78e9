"""Hypothesis profiles shared by the test suite (dropnorm.suite.plugin) and `dropnorm audit`.

  quick     8 examples per test, derandomized, no shrinking: a fast smoke audit (well under a
            minute); a failure is reported with the first failing example, unshrunk
  ci       30 examples per test, derandomized: the default, deterministic in CI
  thorough 300 examples per test, fresh random seeds each run
"""
from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

PROFILES = {
    "quick": dict(max_examples=8, derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate]),
    "ci": dict(max_examples=30, derandomize=True),
    "thorough": dict(max_examples=300, derandomize=False),
}
DEFAULT = "ci"


def register() -> None:
    # filter_too_much: examples needing what an implementation does not provide are filtered out
    # (dropnorm.suite.strategies.given); a test with none left is reported not-provided, not failed
    common = dict(deadline=None, database=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors,
                                         HealthCheck.filter_too_much])
    for name, values in PROFILES.items():
        settings.register_profile(name, **values, **common)
