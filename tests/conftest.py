"""Helpers shared by dropnorm's own tests (tests/): the repository root, the `dropnorm` command and the
property suite run in a fresh process as a user runs them, and reading a report back.

Test modules import them by name (`from tests.conftest import audit`): tests/ is a package, so pytest
imports this file as `tests.conftest` and the import finds that same module. It defines no fixture and
cites no spec clause.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository: the working directory of every child


def clean_env() -> dict:
    """os.environ without DROPNORM_* and PYTEST_* variables, so that a child run is configured by its
    arguments alone and not by the pytest (or pytest-xdist worker) that started it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DROPNORM_", "PYTEST_"))}


def dropnorm_argv(*args: str) -> list[str]:
    """The command line of `dropnorm ARGS` run by this interpreter (for subprocess.Popen)."""
    return [sys.executable, "-m", "dropnorm.run.cli", *args]


def run_dropnorm(*args: str, cwd=ROOT, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`dropnorm ARGS` in a fresh process, as a user runs it: output captured as text, nothing on stdin (a
    child that waits for input fails instead of hanging the test)."""
    return subprocess.run(dropnorm_argv(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def audit(impl: str, report_dir, *args: str, profile: str = "quick", jobs: int | None = 1, timeout: float = 900,
          env: dict | None = None) -> subprocess.CompletedProcess:
    """`dropnorm audit --impl=IMPL --profile=PROFILE --jobs=JOBS --report-dir=REPORT_DIR ARGS` in a fresh
    process (run_dropnorm). One worker by default, so that audits started side by side by the tests' own
    workers do not oversubscribe the machine; jobs=None leaves the audit's default."""
    options = [f"--impl={impl}", f"--profile={profile}", f"--report-dir={report_dir}"]
    if jobs is not None:
        options.append(f"--jobs={jobs}")
    return run_dropnorm("audit", *options, *args, timeout=timeout, env=env)


def run_pytest(*args: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m pytest ARGS` in a fresh process from the repository root (the property suite run without the
    audit around it), without the cache provider, so that a test run leaves no .pytest_cache behind."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)


def clause_entry(report: dict, cid: str) -> dict:
    """The entry of clause `cid` in a report.json's `clauses` (StopIteration when the report has none)."""
    return next(e for e in report["clauses"] if e["id"] == cid)
