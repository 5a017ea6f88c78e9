"""`dropnorm audit`: run the property suite against one implementation and write its report.

The suite runs in a pytest subprocess (always with pytest-xdist workers, so that
an implementation that kills its process costs one test, not the audit). The
subprocess writes one JSON line per finished test (dropnorm/suite/recorder.py);
this process shows them as progress and, at the end or on an interruption,
turns them into the report (dropnorm/report/). pytest's own output goes to
pytest.log in the report directory, so the progress display stays readable.

A watchdog in this process enforces the per-test time limit: a test still
running after --timeout seconds has its worker process killed (which works even
when the implementation is stuck in native code holding the GIL); pytest-xdist
replaces the worker and the audit goes on, and the test is reported as an error
"timed out" on its clauses.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from dropnorm import properties
from dropnorm.errors import UsageError
from dropnorm.results_dir import ResultsFiles
from dropnorm.suite import profiles
from dropnorm.report import diagnosis, environment, files, model
from dropnorm.spec import ROOT, SpecError, clauses, load_deviations

PROPERTIES = properties.DIRECTORY   # the property suite (in the package)
EXIT_CONFORMANT, EXIT_NONCONFORMANT, EXIT_USAGE, EXIT_KNOWN_DEFECTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# Per-test time limits (s). A test's limit is COST_FACTOR times what it cost on torch
# (dropnorm/run/test_costs.json, measured by benchmarks/test_costs.py under the ci profile and scaled by the
# profile's examples), at least MIN_LIMIT_S (a loaded 2-core machine), at most the profile's flat limit below (which also
# applies to tests without a measurement). 20x covers a slower machine and a loaded one.
TIMEOUTS = {"quick": 120.0, "ci": 300.0, "thorough": 1800.0}
COST_FACTOR, MIN_LIMIT_S = 20.0, 60.0
COSTS_FILE = pathlib.Path(__file__).resolve().parent / "test_costs.json"
# After a test has hung, every later test gets a quarter of its limit, at least this much (s): a
# hanging layer then costs one full limit and short ones after it, not a full limit per test.
AFTER_HANG_LIMIT = 15.0
MAX_WORKER_RESTARTS = 10_000  # a crashing implementation may take down a worker in every test


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
    timeout: float | None = None  # None: TIMEOUTS[profile]
    replay: str = "failures"  # which reproduction scripts to run in fresh processes: failures, all, none
    argv: list[str] = field(default_factory=list)

    @property
    def time_limit(self) -> float:
        return self.timeout if self.timeout is not None else TIMEOUTS[self.profile]

    def limit_for(self, nodeid: str, cost_factor: float = 1.0) -> float:
        """This test's limit: --timeout when given, else derived from its measured cost on torch (times
        the implementation's cost_factor: a compiling path is far slower than eager torch)."""
        if self.timeout is not None:
            return self.timeout
        flat = TIMEOUTS[self.profile] * max(1.0, cost_factor / 10)
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


@dataclass
class Target:
    """The implementation under test, as the report describes it."""

    spec: str
    name: str
    version: str
    target: str
    sha256: str | None
    description: str
    convention: str = "torch"  # the documented convention it is checked against (spec/conventions.toml)
    provided: list = field(default_factory=list)   # the layer kinds it has
    cost_factor: float = 1.0                        # how much slower than eager torch its tests run
    # a torch-module file's kinds whose class IS torch.nn's (by identity): judged under torch's record
    torch_own_kinds: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


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


def load_target(opts: Options) -> Target:
    """Load the implementation and construct each class it provides with torch.nn's keywords."""
    from dropnorm.adapters import ImplSpecError, NotProvided, load, normalize
    try:
        spec = normalize(opts.impl)
    except ImplSpecError as e:
        raise UsageError(str(e)) from None
    try:
        impl = load(spec, device=opts.device)
    except NotProvided as e:  # an optional framework that is not installed
        raise UsageError(f"cannot load {opts.impl!r}: {e}") from None
    except FileNotFoundError as e:
        raise UsageError(f"cannot load {opts.impl!r}: {e}") from None
    except SyntaxError as e:
        raise UsageError(f"cannot load {opts.impl!r}: syntax error in {e.filename} line {e.lineno}: {e.msg}") from None
    except ImportError as e:
        hint = "check the module name, or pass a path to a .py file" if isinstance(e, ModuleNotFoundError) \
            else "fix the import in the module"
        raise UsageError(f"cannot load {opts.impl!r}: {_one_line(e)} ({hint})") from None
    except Exception as e:  # importing runs the user's code, which may raise anything
        raise UsageError(f"cannot load {opts.impl!r}: importing it raised {_one_line(e)}") from None
    from dropnorm.spec.kinds import FACTORY
    constructors = {"Dropout": lambda: impl.dropout(p=0.5), "Dropout2d": lambda: impl.dropout2d(p=0.5),
                    **{f"BatchNorm{d}d": (lambda d=d: impl.batchnorm(d, 3)) for d in (1, 2, 3)},
                    # the rest of the family (issue 15): only where the adapter says it has the kind
                    **{k: (lambda k=k: getattr(impl, FACTORY[k])(p=0.5)) for k in
                       ("Dropout1d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout") if impl.provides(k)}}
    provided = []
    for kind, make in constructors.items():
        try:
            make()
            provided.append(kind)
        except NotProvided:
            continue
        except Exception as e:
            raise UsageError(f"{impl.describe()}: {kind} cannot be constructed with torch.nn's keywords "
                             f"({_one_line(e)}); see README, 'Audit your own layers'") from None
    if not provided:
        raise UsageError(f"{impl.describe()} provides none of {', '.join(constructors)}: nothing to audit")
    target = getattr(impl, "target", spec)
    sha = environment.file_sha256(target) if target.endswith(".py") and os.path.isfile(target) else None
    from dropnorm.spec import conventions
    return Target(spec, impl.name, str(impl.version), target, sha, impl.describe(), conventions.of(impl).name,
                  provided, float(getattr(impl, "cost_factor", 1.0)), list(getattr(impl, "torch_own_kinds", ())))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "implementation"


def default_report_dir(target: Target, device: str) -> pathlib.Path:
    """reports/<implementation>-<version>-<device>; a file's name carries its path's hash, so that
    two files with the same name never share a report directory."""
    name = target.name.replace("torch-module:", "")
    if target.sha256 is not None:
        name += "-" + hashlib.sha256(target.target.encode()).hexdigest()[:8]
    return pathlib.Path("reports") / slug(f"{name}-{target.version}-{device}")


def prepare_dir(path: pathlib.Path) -> pathlib.Path:
    """The report directory, writable and cleared of the last run's files; that run's report is kept in
    previous/ (files.keep_previous) for `dropnorm compare DIR`."""
    path = path.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write the report directory {path}: {e.strerror or e}; "
                         "choose another with --report-dir") from None
    files.keep_previous(path)
    for stale in ("report.json", "report.md", "report.html", "junit.xml", "pytest.log"):
        (path / stale).unlink(missing_ok=True)
    ResultsFiles.in_directory(path).clear()
    for old in path.glob("repro-*.py"):
        old.unlink()
    return path


def run_directory() -> pathlib.Path:
    """Where the suite's pytest runs: the source checkout (its pyproject.toml settings), else the package."""
    return ROOT if (ROOT / "pyproject.toml").is_file() else PROPERTIES


def pytest_command(opts: Options, directory: pathlib.Path, spec: str) -> list[str]:
    test_files = properties.module_files()
    if not test_files:
        raise UsageError(f"no property tests under {PROPERTIES}: the installed dropnorm is incomplete; "
                         "reinstall it (pip install --force-reinstall dropnorm)")
    cmd = [sys.executable, "-m", "pytest", *test_files, f"--impl={spec}", f"--device={opts.device}",
           f"--hypothesis-profile={opts.profile}", "-n", opts.jobs, f"--max-worker-restart={MAX_WORKER_RESTARTS}", "-p", "no:cacheprovider", "-q", "-rN",
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


def run_pytest(cmd: list[str], directory: pathlib.Path, progress: Progress,
               watchdog: Watchdog) -> tuple[int | None, bool]:
    """Run the suite; returns (pytest's exit status or None, interrupted)."""
    results = ResultsFiles.in_directory(directory)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("DROPNORM_IMPL", None)
    with open(directory / "pytest.log", "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=run_directory(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        interrupted = False
        try:
            while proc.poll() is None:
                progress.poll(results)
                watchdog.check()
                time.sleep(0.2)
        except KeyboardInterrupt:
            interrupted = True
            _stop(proc)
        progress.poll(results)
        return proc.returncode, interrupted


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


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def build_report(opts: Options, target: Target, directory: pathlib.Path, started: float, finished: float,
                 exit_status: int | None, interrupted: bool) -> dict:
    results = ResultsFiles.in_directory(directory)
    records, events = model.read_records(results.records, results.read_timeouts())
    collected = results.read_collected() or {}
    selected = None
    if opts.clauses or opts.layers:
        selected = set(opts.clauses) | {cid for cid, c in clauses().items() if c.layer in opts.layers}
    entries = model.clause_entries(records, collected, selected, target.provided)
    complete = not interrupted and "finish" in events and not events["finish"].get("interrupted") \
        and len(records) >= len(collected)
    from dropnorm.spec.kinds import KINDS
    layers = {"provided": list(target.provided), "missing": [k for k in KINDS if k not in target.provided]}
    dtypes, layouts = model.exercised(records)
    env = environment.environment()
    env.update(device=opts.device, dtypes=dtypes, layouts=layouts, seed=opts.seed,
               derandomized=opts.seed is None and profiles.PROFILES[opts.profile]["derandomize"],
               profile=opts.profile, max_examples=profiles.PROFILES[opts.profile]["max_examples"],
               jobs=int(opts.jobs) if opts.jobs.isdigit() else opts.jobs, time_limit_s=opts.time_limit)
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    # a selection (--clause, --layer) is never conformant: most clauses did not run (the headline says so)
    headline = (model.verdict(entries, opts.strict, complete) if selected is None
                else model.selection_verdict(entries, selected, opts.strict, complete))
    return model.finite_json({
            "schema_version": model.SCHEMA_VERSION, "complete": complete,
            "conformant": selected is None and model.is_conformant(entries, opts.strict, complete),
            "strict": opts.strict,
            "verdict": headline + (REFERENCE_NOTE if target.name == "reference" else ""), "layers": layers,
            "classes": model.class_verdicts(entries, opts.strict, complete),
            "deviations": deviation_hits(opts, target, records, entries),
            "implementation": target.as_dict(), "provenance": environment.provenance(opts.argv),
            "environment": env,
            "run": {"started": iso(started), "finished": iso(finished), "duration_s": round(finished - started, 3),
                    "tests": len(records), "pytest_exit_status": exit_status},
            "selection": {"clauses": sorted(opts.clauses) or None, "layers": sorted(opts.layers) or None},
            "summary": model.summary(entries), "diagnosis": diagnosis.diagnose(entries), "clauses": entries})


# The reference computes the expected values itself: its audit shows that the suite's machinery runs,
# not that the reference is right (tests/test_reference_exact.py checks it against exact arithmetic).
REFERENCE_NOTE = (" (the oracle audited against itself: a self-consistency check of the suite, not evidence; "
                  "tests/test_reference_exact.py verifies the reference against exact rational arithmetic)")


def deviation_hits(opts: Options, target: Target, records: list[dict], entries: list[dict]) -> list[dict]:
    """Every recorded deviation of the audited clauses, with how many tests met it; `stale` where
    the clause's tests ran and none did (a fixed bug, or an entry whose scope no longer matches)."""
    from dropnorm.suite.plugin import recorded_deviations
    recorded = recorded_deviations(target.name, target.torch_own_kinds,
                                   [d for p in opts.deviations for d in load_deviations(p)])
    status = {e["id"]: e["status"] for e in entries}
    out = []
    for dev in recorded:
        if dev.clause not in status:
            continue
        hits = sum(d.get("key") == dev.key for r in records for d in r.get("deviations", []))
        judged = status[dev.clause] not in ("not-provided", "skip", "not-reached", "error")
        out.append({"clause": dev.clause, "condition": dev.condition, "kind": dev.kind, "key": dev.key,
                    "finding": dev.finding, "reason": dev.reason, "hits": hits, "stale": judged and hits == 0})
    return out


def audit(opts: Options) -> int:
    check_options(opts)
    target = load_target(opts)
    directory = prepare_dir(pathlib.Path(opts.report_dir) if opts.report_dir
                            else default_report_dir(target, opts.device))
    cmd = pytest_command(opts, directory, target.spec)
    if not opts.quiet:
        from dropnorm.spec.kinds import KINDS
        missing = [k for k in KINDS if k not in target.provided]
        print(f"dropnorm audit: {target.description} on {opts.device}, profile {opts.profile}; "
              f"report in {directory}\nprovided: {', '.join(target.provided)}"
              + (f"; missing: {', '.join(missing)} (their clauses are not-provided)" if missing else "")
              + (f"\ntorch's own classes (judged under spec/deviations/torch.toml): {', '.join(target.torch_own_kinds)}"
                 if target.torch_own_kinds else ""),
              file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    started = time.time()
    try:
        exit_status, interrupted = run_pytest(cmd, directory, Progress(opts.quiet),
                                              Watchdog(directory, lambda nodeid: opts.limit_for(
                                                  nodeid, target.cost_factor)))
        report = build_report(opts, target, directory, started, time.time(), exit_status, interrupted)
        files.write_report(directory, report)
        if opts.replay != "none" and not interrupted:
            try:
                replay_and_rewrite(directory, report, opts, target)
            except KeyboardInterrupt:  # SIGINT/SIGTERM while replaying: keep the verdict and what was replayed
                interrupted = True
                report["run"]["replay_interrupted"] = True
                files.write_report(directory, report)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary_line(report, directory), file=sys.stderr)
    if report["run"].get("replay_interrupted"):
        print("dropnorm audit: interrupted while replaying the reproduction scripts; the verdict above stands, "
              "failures without a 'run alone' result were not replayed", file=sys.stderr)
    if interrupted or not report["complete"]:
        return EXIT_INTERRUPTED if interrupted else _incomplete(report, directory)
    if model.nothing_tested(report["clauses"]):
        raise UsageError(f"nothing could be tested: every clause was skipped or not provided "
                         f"(see {directory / 'report.md'})")
    if report["conformant"] or (report["selection"]["clauses"] or report["selection"]["layers"]) and \
            model.is_conformant(report["clauses"], opts.strict, report["complete"]):
        return EXIT_CONFORMANT  # the whole spec holds, or (a selection) the selected clauses hold
    return EXIT_KNOWN_DEFECTS if model.only_known_defects(report["clauses"], opts.strict) else EXIT_NONCONFORMANT


def replay_and_rewrite(directory: pathlib.Path, report: dict, opts: Options, target) -> None:
    """Run each reproduction script in a fresh process (report/replay.py) and write the report again with
    the outcomes. A script gets the time limit of a test of its cost (a compiling path recompiles)."""
    from dropnorm.report import replay
    known = opts.replay == "all"
    if not any(e.get("failure") or (known and e.get("deviations")) for e in report["clauses"]):
        return
    if not opts.quiet:
        print("dropnorm audit: running the reproduction scripts in fresh processes (--replay none skips this)",
              file=sys.stderr)
    limit = min(600.0, 60.0 * max(1.0, target.cost_factor / 10))
    report["run"]["replay_s"] = round(replay.replay_scripts(directory, report, limit, known_defects=known), 1)
    files.write_report(directory, report)


def _incomplete(report: dict, directory: pathlib.Path) -> int:
    if report["run"]["tests"] == 0:
        log = (directory / "pytest.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        raise UsageError("the test run stopped before any test finished: "
                         + (log[-1] if log else "no output") + f" (see {directory / 'pytest.log'})")
    return EXIT_NONCONFORMANT


def summary_line(report: dict, directory: pathlib.Path) -> str:
    """The verdict, the counts, then one line per clause that keeps the implementation from conformant
    (what failed, in its own words, shortened without cutting its case), stale deviations, and where the
    report is."""
    from dropnorm.report.markdown import keep_case
    s = report["summary"]
    counts = ", ".join(f"{s[k]} {k}" for k in model.STATUSES if s[k])
    lines = [f"{report['implementation']['name']} {report['implementation']['version']}: {report['verdict']}",
             f"clauses: {counts}"]
    if report.get("diagnosis"):  # the failures grouped by likely cause (dropnorm/report/diagnosis.py)
        lines += ["likely causes:"] + [f"  {line}" for line in diagnosis.lines(report["diagnosis"])]
    missing = report.get("layers", {}).get("missing")
    if missing:
        lines.append(f"missing layers: {', '.join(missing)}")
    for k in report.get("classes", []):
        if k["verdict"] != "conformant" or k["should_failures"]:
            lines.append(f"  class {k['title']}: {k['verdict']}"
                         + (f" ({', '.join(k['failing'])})" if k["failing"] else "")
                         + (f"; SHOULD not met: {', '.join(k['should_failures'])}" if k["should_failures"] else ""))
    conformant_classes = [k["title"] for k in report.get("classes", []) if k["verdict"] == "conformant"]
    if conformant_classes:
        lines.append(f"  conformant classes: {', '.join(conformant_classes)}")
    # failures by severity (a wrong value returned silently first), then status and clause
    for e in sorted(report["clauses"], key=model.failure_order):
        if e["status"] in model.FAILING:
            first = (e["reason"] or "").splitlines()[0] if e["reason"] else ""
            script = (e.get("failure") or {}).get("script_file")
            alone = (e.get("failure") or {}).get("standalone", {}).get("outcome")
            note = {"reproduced": ", reproduces alone", "not-reproduced": ", DOES NOT reproduce alone",
                    "error": ", script error", "timed-out": ", script timed out"}.get(alone, "")
            sev = e.get("severity") or "-"
            lines.append(f"  {e['status']:<12} {sev:<16} {e['id']:<15} {keep_case(first, 220)}"
                         + (f"  [{script}{note}]" if script else ""))
    unreplayed = sorted({f"{e['id']}/{d['condition']}" for e in report["clauses"] for d in e.get("deviations", [])
                         if d.get("standalone", {}).get("outcome", "reproduced") != "reproduced"})
    if unreplayed:
        lines.append(f"known defects whose evidence script did not reproduce alone: {'; '.join(unreplayed)}")
    stale = [d["key"] for d in report.get("deviations", []) if d["stale"]]
    if stale:
        lines.append(f"stale deviations (recorded, but no example met them): {'; '.join(stale)}")
    lines.append(f"report: {directory}/report.{{json,md,html}}, junit.xml")
    return "\n".join(lines)
