"""The pytest subprocess of one audit, supervised: its command line, progress, the per-test watchdog,
and a clean stop on Ctrl-C.

The suite runs in a pytest subprocess (always with pytest-xdist workers, so that an implementation
that kills its process costs one test, not the audit). The subprocess writes one JSON line per
finished test (dropnorm/results_dir.py); this process shows them as progress. A watchdog enforces
the per-test time limit: a test still running past its limit has its worker process killed (which
works even when the implementation is stuck in native code holding the GIL); pytest-xdist replaces
the worker and the audit goes on, and the test is reported as an error "timed out" on its clauses.
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

from dropnorm import properties
from dropnorm.errors import UsageError
from dropnorm.results_dir import ResultsFiles
from dropnorm.run.options import Options
from dropnorm.spec import ROOT

# After a test has hung, every later test gets a quarter of its limit, at least this much (s): a
# hanging layer then costs one full limit and short ones after it, not a full limit per test.
AFTER_HANG_LIMIT = 15.0
MAX_WORKER_RESTARTS = 10_000  # a crashing implementation may take down a worker in every test


def run_directory() -> pathlib.Path:
    """Where the suite's pytest runs: the source checkout (its pyproject.toml settings), else the package."""
    return ROOT if (ROOT / "pyproject.toml").is_file() else properties.DIRECTORY


def early_start(opts: Options) -> bool:
    """Whether pytest can start before the audit process has loaded the implementation: the report directory
    is named (the default one is named after the implementation's version), and the implementation is a
    built-in one whose modules are installed (a user's file is loaded first: its errors must come before any
    run). Loading torch then overlaps the workers' own start-up: about 2 s of a short audit's wall time."""
    import importlib.util
    from dropnorm.adapters import REGISTRY
    if opts.report_dir is None or opts.impl not in REGISTRY:
        return False
    try:
        return all(importlib.util.find_spec(m) is not None for m in REGISTRY[opts.impl][2])
    except (ImportError, ValueError):
        return False


def workers(opts: Options) -> str:
    """pytest-xdist workers: --jobs, where 'auto' is one worker for a selection of clauses and one per CPU
    otherwise. Each worker pays its own start-up (python, pytest, hypothesis, the framework: about 4 s of
    CPU with torch), which a clause's few tests do not earn back on a second worker; a worker there still
    keeps a crashing implementation from taking the audit down with it."""
    if opts.jobs != "auto":
        return opts.jobs
    return "1" if opts.clauses and not opts.layers else "auto"


def pytest_command(opts: Options, directory: pathlib.Path, spec: str) -> list[str]:
    test_files = properties.module_files()
    if not test_files:
        raise UsageError(f"no property tests under {properties.DIRECTORY}: the installed dropnorm is incomplete; "
                         "reinstall it (pip install --force-reinstall dropnorm)")
    cmd = [sys.executable, "-m", "pytest", *test_files, f"--impl={spec}", f"--device={opts.device}",
           f"--hypothesis-profile={opts.profile}", "-n", workers(opts), f"--max-worker-restart={MAX_WORKER_RESTARTS}", "-p", "no:cacheprovider", "-q", "-rN",
           "--tb=short", f"--junitxml={directory / 'junit.xml'}", "-o", "junit_logging=no",
           f"--dropnorm-results={ResultsFiles.in_directory(directory).records}"]
    cmd += [f"--clause={c}" for c in opts.clauses] + [f"--layer={lay}" for lay in opts.layers]
    cmd += [f"--deviations={os.path.abspath(d)}" for d in opts.deviations]
    if opts.seed is not None:
        cmd.append(f"--hypothesis-seed={opts.seed}")
    return cmd


class Progress:
    """One line per finished test on stderr, failures marked; a final summary."""

    def __init__(self, quiet: bool):
        self.quiet, self.done, self.total, self.offset = quiet, 0, None, 0

    def poll(self, files: ResultsFiles) -> None:
        if self.total is None:
            collected = files.read_collected()
            if collected is not None:
                self.total = len(collected)
        entries, self.offset = files.events_since(self.offset)
        for entry in entries:
            if entry.get("event") == "test":
                self.show(entry)

    def show(self, entry: dict) -> None:
        if entry["when"] == "call" or entry["outcome"] != "passed":
            self.done += 1 if entry["when"] != "teardown" else 0
        if self.quiet:
            return
        word = {"passed": "ok", "skipped": "skip", "failed": "FAIL"}[entry["outcome"]]
        if entry["outcome"] == "skipped" and entry.get("skip_reason", "").startswith("known deviation"):
            word = "dev"
        if entry["outcome"] == "failed" and not entry.get("violations"):
            word = "ERROR"
        total = self.total if self.total is not None else "?"
        name = entry["nodeid"].split("/")[-1]
        cited = ",".join(entry.get("clauses") or [])
        print(f"[{self.done:>3}/{total}] {word:<5} {name}  {cited}  ({entry['duration']:.1f} s)",
              file=sys.stderr, flush=True)


class Watchdog:
    """Kills a worker whose test has run longer than the limit; remembers which tests timed out."""

    def __init__(self, directory: pathlib.Path, limit):
        self.files = ResultsFiles.in_directory(directory)
        self.limit = limit if callable(limit) else (lambda nodeid, flat=limit: flat)  # nodeid -> seconds
        self.timed_out: dict[str, float] = {}

    def current_limit(self, nodeid: str) -> float:
        """The test's own limit until a test has hung; then a quarter of it (at least AFTER_HANG_LIMIT) for
        every later test: still 5x its measured cost on torch, but a second hang costs little."""
        own = self.limit(nodeid)
        return min(own, max(AFTER_HANG_LIMIT, own / 4)) if self.timed_out else own

    def check(self) -> None:
        now = time.time()
        for marker in self.files.running_markers():
            info = self.files.read_marker(marker)
            if info is None:  # just replaced or removed by its worker
                continue
            limit = self.current_limit(info["nodeid"])
            if now - info["started"] <= limit or info["nodeid"] in self.timed_out:
                continue
            if not _alive(info["pid"]):  # the worker died on its own (a crash): xdist reports that
                marker.unlink(missing_ok=True)
                continue
            self.timed_out[info["nodeid"]] = limit
            self.files.write_timeouts(self.timed_out)
            try:
                os.kill(info["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            marker.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a dead child not yet reaped by its parent (pytest's xdist) is a zombie: not alive
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class PytestRun:
    """The suite's pytest subprocess, started at once (its output goes to pytest.log) and supervised later,
    so that the audit process can describe the implementation while pytest starts its workers."""

    def __init__(self, cmd: list[str], directory: pathlib.Path):
        self.results = ResultsFiles.in_directory(directory)
        self.started = time.time()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("DROPNORM_IMPL", None)
        with open(directory / "pytest.log", "w", encoding="utf-8") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=run_directory(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def supervise(self, progress: Progress, watchdog: Watchdog) -> tuple[int | None, bool]:
        """Follow the run to its end; returns (pytest's exit status or None, interrupted)."""
        interrupted = False
        try:
            while self.proc.poll() is None:
                progress.poll(self.results)
                watchdog.check()
                time.sleep(0.2)
        except KeyboardInterrupt:
            interrupted = True
            self.stop()
        progress.poll(self.results)
        return self.proc.returncode, interrupted

    def stop(self) -> None:
        _stop(self.proc)


def _stop(proc: subprocess.Popen) -> None:
    """Interrupt pytest (it writes what finished), then make sure its workers are gone."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt
