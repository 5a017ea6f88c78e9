"""What one audit is asked to do: its options, checked, and each test's time limit.

Per-test time limits (s): a test's limit is COST_FACTOR times what it cost on torch (test_costs.json
beside this module, measured by benchmarks/test_costs.py under the ci profile and scaled by the
profile's examples), at least MIN_LIMIT_S (a loaded 2-core machine), at most the profile's own flat
limit (suite/profiles.py, which also applies to tests without a measurement). 20x covers a slower
machine and a loaded one.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field

from dropnorm.errors import SpecError, UsageError
from dropnorm.spec import clauses, load_deviations
from dropnorm.suite import profiles


COST_FACTOR, MIN_LIMIT_S = 20.0, 60.0


COSTS_FILE = pathlib.Path(__file__).resolve().parent / "test_costs.json"


@dataclass
class Options:
    impl: str = "torch"
    layers: list[str] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)
    profile: str = profiles.DEFAULT
    report_dir: str | None = None
    jobs: str = "auto"
    device: str = "cpu"
    seed: int | None = None
    strict: bool = False
    deviations: list[str] = field(default_factory=list)
    quiet: bool = False
    timeout: float | None = None  # None: the profile's time_limit_s
    replay: str = "failures"  # which reproduction scripts to run in fresh processes: failures, all, none
    argv: list[str] = field(default_factory=list)

    @property
    def time_limit(self) -> float:
        return self.timeout if self.timeout is not None else profiles.PROFILES[self.profile]["time_limit_s"]

    def limit_for(self, nodeid: str, cost_factor: float = 1.0) -> float:
        """This test's limit: --timeout when given, else derived from its measured cost on torch (times
        the implementation's cost_factor: a compiling path is far slower than eager torch)."""
        if self.timeout is not None:
            return self.timeout
        flat = profiles.PROFILES[self.profile]["time_limit_s"] * max(1.0, cost_factor / 10)
        cost = _costs().get(nodeid.split("::")[-1].split("[")[0])
        if cost is None:
            return flat
        scale = profiles.PROFILES[self.profile]["max_examples"] / profiles.PROFILES["ci"]["max_examples"]
        return min(flat, max(MIN_LIMIT_S, COST_FACTOR * cost * scale * cost_factor))


def _costs() -> dict:
    try:
        return json.loads(COSTS_FILE.read_text(encoding="utf-8"))["seconds"]
    except (OSError, ValueError, KeyError):
        return {}


def check_options(opts: Options) -> None:
    if opts.profile not in profiles.PROFILES:
        raise UsageError(f"unknown profile {opts.profile!r}: use one of {', '.join(profiles.PROFILES)}")
    unknown = [c for c in opts.clauses if c not in clauses()]
    if unknown:
        raise UsageError(f"unknown clause {', '.join(unknown)}: `dropnorm clauses` lists them")
    if opts.timeout is not None and not opts.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {opts.timeout!r}")
    if opts.jobs != "auto" and not (opts.jobs.isdigit() and int(opts.jobs) >= 1):
        raise UsageError(f"--jobs must be a positive number or 'auto', got {opts.jobs!r}")
    for path in opts.deviations:
        try:
            load_deviations(path)
        except SpecError as e:
            raise UsageError(f"--deviations: {e}") from None
    if opts.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: torch reports no CUDA device on this machine "
                             f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); use --device cpu")
