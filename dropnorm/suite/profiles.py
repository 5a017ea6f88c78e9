"""The audit profiles, shared by the test suite (dropnorm.suite.plugin) and `dropnorm audit`: how many
hypothesis examples each test draws, and how long a test may run before the audit stops it.

  quick     8 examples per test, derandomized, no shrinking: a fast smoke audit (well under a
            minute); a failure is reported with the first failing example, unshrunk
  ci       30 examples per test, derandomized: the default, deterministic in CI
  thorough 300 examples per test, fresh random seeds each run
"""
from __future__ import annotations

# plain data, so that the parent process reads it without importing hypothesis. time_limit_s: a test's flat
# time limit (s) under the profile, where no measured cost on torch gives a tighter one (run/options.py)
PROFILES = {
    "quick": dict(max_examples=8, derandomize=True, shrink=False, time_limit_s=120.0),
    "ci": dict(max_examples=30, derandomize=True, shrink=True, time_limit_s=300.0),
    "thorough": dict(max_examples=300, derandomize=False, shrink=True, time_limit_s=1800.0),
}
DEFAULT = "ci"


def register() -> None:
    from hypothesis import HealthCheck, Phase, settings
    # filter_too_much: examples needing what an implementation does not provide are filtered out
    # (dropnorm.suite.strategies.given); a test with none left is reported not-provided, not failed
    common = dict(deadline=None, database=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors,
                                         HealthCheck.filter_too_much])
    for name, p in PROFILES.items():
        phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if p["shrink"] else [])
        settings.register_profile(name, max_examples=p["max_examples"], derandomize=p["derandomize"],
                                  phases=phases, **common)
