"""`dropnorm audit`: run the property suite against one implementation and write its report.

  options.py    what the audit is asked to do, and each test's time limit
  target.py     the implementation, loaded here once to describe it
  supervise.py  the pytest subprocess: command, progress, watchdog, Ctrl-C
  this module   the report directory, the report built from the run's records (dropnorm/report/),
                the replay of reproductions, and the summary line
The audit ends with report.json/md/html on whatever finished, even when interrupted.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import pathlib
import re
import signal
import sys
import time

from dropnorm.errors import UsageError
from dropnorm.results_dir import ResultsFiles
from dropnorm.suite import profiles
from dropnorm.report import diagnosis, environment, files, model
from dropnorm.spec import clauses, load_deviations
from dropnorm.run.options import Options, check_options
from dropnorm.run.supervise import (Progress, PytestRun, Watchdog, early_start, pytest_command,
                                     sigterm_as_interrupt)
from dropnorm.run.target import Target, load_target

EXIT_CONFORMANT, EXIT_NONCONFORMANT, EXIT_USAGE, EXIT_KNOWN_DEFECTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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


def build_report(opts: Options, target: Target, directory: pathlib.Path, started: float, finished: float,
                 exit_status: int | None, interrupted: bool) -> tuple[dict, list[dict]]:
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
            "summary": model.summary(entries), "diagnosis": diagnosis.diagnose(entries), "clauses": entries}), records


def timings(records: list[dict], audit_started: float, pytest_started: float, pytest_finished: float) -> dict:
    """Where the audit's time went (report.json run.timings; benchmarks/breakdown.py reads them): this
    process before pytest starts (loading the target), pytest's start-up and collection up to the first
    test, the tests (first start to last end, wall), pytest's shutdown, and the time spent inside the
    implementation's calls (the traced path measures it) next to the tests' own summed durations."""
    tests = [r for r in records if r.get("time") is not None]
    first = min((r["time"] - r["duration"] for r in tests), default=pytest_finished)
    last = max((r["time"] for r in tests), default=pytest_finished)
    first = max(first, pytest_started)
    return {"setup_s": round(pytest_started - audit_started, 3),
            "pytest_startup_s": round(first - pytest_started, 3),
            "tests_s": round(max(0.0, last - first), 3),
            "pytest_shutdown_s": round(max(0.0, pytest_finished - last), 3),
            "tests_summed_s": round(sum(r.get("duration") or 0.0 for r in records), 3),
            "implementation_s": round(sum(r.get("implementation_s") or 0.0 for r in records), 3)}


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
    audit_started = time.time()
    check_options(opts)
    if early_start(opts):  # pytest starts its workers while this process describes the implementation
        directory = prepare_dir(pathlib.Path(opts.report_dir))
        run = PytestRun(pytest_command(opts, directory, opts.impl), directory)
        try:
            target = load_target(opts)
        except BaseException:
            run.stop()
            raise
    else:
        target = load_target(opts)
        directory = prepare_dir(pathlib.Path(opts.report_dir) if opts.report_dir
                                else default_report_dir(target, opts.device))
        run = PytestRun(pytest_command(opts, directory, target.spec), directory)
    if not opts.quiet:
        from dropnorm.spec.kinds import KINDS
        missing = [k for k in KINDS if k not in target.provided]
        print(f"dropnorm audit: {target.description} on {opts.device}, profile {opts.profile}; "
              f"report in {directory}\nprovided: {', '.join(target.provided)}"
              + (f"; missing: {', '.join(missing)} (their clauses are not-provided)" if missing else "")
              + (f"\ntorch's own classes (judged under spec/deviations/torch.toml): {', '.join(target.torch_own_kinds)}"
                 if target.torch_own_kinds else ""),
              file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    started = run.started
    try:
        exit_status, interrupted = run.supervise(Progress(opts.quiet), Watchdog(directory, lambda nodeid: opts.limit_for(
                                                 nodeid, target.cost_factor)))
        pytest_finished = time.time()
        report, records = build_report(opts, target, directory, started, pytest_finished, exit_status, interrupted)
        report["run"]["timings"] = timings(records, audit_started, started, pytest_finished)
        files.write_report(directory, report)
        report["run"]["timings"]["report_s"] = round(time.time() - pytest_finished, 3)
        if opts.replay != "none" and not interrupted:
            try:
                replay_and_rewrite(directory, report, opts, target)
            except KeyboardInterrupt:  # SIGINT/SIGTERM while replaying: keep the verdict and what was replayed
                interrupted = True
                report["run"]["replay_interrupted"] = True
                files.write_report(directory, report)
        report["run"]["timings"]["wall_s"] = round(time.time() - audit_started, 3)
        files.write_report(directory, report, renders=False)  # report.json alone: the timings are complete now
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
