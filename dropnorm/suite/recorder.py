"""pytest plugin: one JSON line per test outcome, for `dropnorm audit` and its reports.

Enabled with --dropnorm-results FILE (dropnorm.run.audit passes it). In each process
that runs tests (an xdist worker, or pytest itself without xdist) the outcome of
a test is summarised as a record (its clauses, what failed and why, the
counterexample and reproduction, measurements, examples run) and attached to the
report as a user property; the process that writes reports (the xdist
controller) moves it from the report into FILE, one line per test, flushed at
once so that an interrupted audit keeps everything finished so far. The
collected test -> clauses map goes to FILE.collected.json, so that a test whose
worker died, and so produced no record, can still be charged to its clauses.

While a test runs, its process keeps FILE.running/<pid>.json saying which test
it runs since when: the audit's watchdog (dropnorm/run/audit.py) reads it to stop a
worker whose test overruns its time limit, even one stuck in native code.
Warnings raised during a test go to FILE as "warning" events.
"""
from __future__ import annotations

import json
import time

import pytest

from dropnorm.results_dir import ResultsFiles
from dropnorm.suite import state

PROPERTY = "dropnorm-record"


def pytest_addoption(parser):
    parser.getgroup("dropnorm").addoption("--dropnorm-results", default=None, metavar="FILE",
                                          help="write one JSON line per test outcome to FILE (dropnorm audit)")


def _files(config) -> ResultsFiles | None:
    value = config.getoption("dropnorm_results", None)
    return ResultsFiles(value) if value else None


def _clauses(item) -> list[str]:
    return [cid for m in item.iter_markers("clause") for cid in m.args]


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    files = _files(session.config)
    if files is not None:
        files.write_collected({item.nodeid: _clauses(item) for item in session.items})


def _violations(exc) -> list:
    """ClauseViolations in exc, through hypothesis's ExceptionGroups of distinct failures."""
    from dropnorm.suite.checks import ClauseViolation
    if isinstance(exc, ClauseViolation):
        return [exc]
    return [v for sub in getattr(exc, "exceptions", ()) for v in _violations(sub)]


def _counterexample(exc) -> str | None:
    def example_notes(e):  # hypothesis notes the shrunk example ("Falsifying example" in older versions), or
        # the explicit example (hypothesis.example) that failed
        return [n for n in getattr(e, "__notes__", [])
                if n.startswith(("Failing test case", "Failing explicit example", "Falsifying"))]
    notes = example_notes(exc) + [n for sub in getattr(exc, "exceptions", ()) for n in example_notes(sub)]
    return "\n".join(notes) or None


def _error_text(exc) -> str:
    subs = getattr(exc, "exceptions", None)
    if subs:  # hypothesis found several distinct failures: name each
        text = f"{len(subs)} distinct failures: " + " | ".join(f"{type(e).__name__}: {e}" for e in subs)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 2000 else text[:2000] + " ..."


def attach_record(item, call, rep) -> None:
    """Summarise a test phase's outcome as a record on its report (a user property that travels from an
    xdist worker to the controller). Called by the plugin's makereport hook once it has settled the
    outcome (not provided: skipped; a recorded deviation met: xfail), so that the record reads the
    final outcome: one hook, in one order, instead of two wrappers that relied on registration order."""
    if _files(item.config) is None:
        return
    callspec = getattr(item, "callspec", None)
    record = {"clauses": _clauses(item), "when": rep.when,
              "impl": callspec.params.get("impl") if callspec is not None else None}
    ctx = getattr(item, "dropnorm_context", None)
    if ctx is not None and rep.when == "call":
        from dropnorm.suite.traced import current_trace
        record["examples"] = ctx.examples or 1  # a test without hypothesis runs one example
        record["inputs"] = sorted(current_trace().inputs)
        record["kinds"] = sorted(current_trace().kinds)    # layer kinds called in examples that ran to their end
        record["measurements"] = ctx.measurements  # all of them: calibration reads every p-value
        record["runs"] = ctx.runs
        record["implementation_s"] = round(current_trace().implementation_s, 4)
        if ctx.unjudged:
            record["unjudged"] = ctx.unjudged
        if ctx.not_provided:
            record["not_provided"] = dict(ctx.not_provided)
            # the layer kinds of the filtered examples (null: an example filtered before it called a layer)
            record["not_provided_kinds"] = sorted(ctx.not_provided_kinds, key=lambda k: (k is None, k or ""))
        # every check executed, held or not: [clause, condition, layer kind (null: no layer called)]
        record["conditions_run"] = sorted([list(t) for t in ctx.ran], key=lambda t: (t[0], t[1], t[2] or ""))
        if ctx.inapplicable:  # conditions that cannot apply to the case under the implementation's convention
            record["conditions_inapplicable"] = sorted([list(t) for t in ctx.inapplicable],
                                                       key=lambda t: (t[0], t[1], t[2] or ""))
        record["deviations"] = [{"clause": c, "condition": cond, "kind": dev.kind, "key": dev.key, "layer": layer,
                                 "reason": dev.reason, "finding": dev.finding, "message": msg,
                                 "severity": evidence.severity,
                                 # a known defect's reproduction: evidence that the recorded bug is still there
                                 "script": evidence.script if dev.kind == "known-defect" else None}
                                for (c, cond, _key, _kind), (dev, msg, layer, evidence) in ctx.observed.items()]
    exc = call.excinfo.value if call.excinfo is not None else None
    if exc is not None and rep.outcome == "failed":
        record["counterexample"] = _counterexample(exc)
        found = _violations(exc)
        if found:
            from dropnorm.suite.checks import circumstances
            record["violations"] = [{"clause": v.clause, "condition": v.condition, "message": v.message,
                                     "severity": v.severity, "observed": v.observed, "expected": v.expected,
                                     "layer": circumstances(v.calls)["layer"],
                                     "reproduction": v.shown_script(), "script": v.script} for v in found]
            if getattr(exc, "unjudged", ""):
                record["unjudged"] = exc.unjudged
        else:
            record["error"] = _error_text(exc)
    elif rep.outcome == "skipped":
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr or "")
        record["skip_reason"] = getattr(rep, "wasxfail", "") or reason
    rep.user_properties.append((PROPERTY, json.dumps(record, default=str)))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    files = _files(item.config)
    if files is None:
        yield
        return
    marker = files.mark_running(item.nodeid)
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def pytest_warning_recorded(warning_message, when, nodeid, location):
    config = state.current().config
    writer = getattr(config, "_dropnorm_writer", None) if config is not None else None
    if writer is not None and nodeid:
        writer.write({"event": "warning", "nodeid": nodeid,
                      "message": f"{warning_message.category.__name__}: {warning_message.message}"[:1000],
                      "where": f"{warning_message.filename}:{warning_message.lineno}"})


def pytest_configure(config):
    files = _files(config)
    if files is not None and not hasattr(config, "workerinput"):  # the process that writes reports
        config._dropnorm_writer = files.open_records()
        config._dropnorm_writer.write({"event": "start", "time": time.time()})


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    props = getattr(report, "user_properties", None)
    if props is None:
        return
    config = state.current().config
    writer = getattr(config, "_dropnorm_writer", None) if config is not None else None
    if writer is None:  # an xdist worker: the record travels to the controller with the report
        return
    records = [v for k, v in props if k == PROPERTY]
    # the record is for the results file, not for junit.xml's properties
    props[:] = [(k, v) for k, v in props if k != PROPERTY]
    if report.when != "call" and report.outcome == "passed":
        return
    entry = {"event": "test", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
             "duration": report.duration, "time": time.time(), "worker": _worker(report)}
    entry.update(json.loads(records[0]) if records else {"crash": str(report.longrepr)[-4000:]})
    if report.outcome == "failed" and not records:
        last = str(report.longrepr).strip().splitlines()[-1][:500] if str(report.longrepr).strip() else ""
        entry["error"] = f"the worker process died while running this test (a crash, os._exit or a kill): {last}"
    if report.capstdout or report.capstderr:
        entry["output"] = (report.capstdout + report.capstderr)[-4000:]
    writer.write(entry)


def _worker(report) -> str | None:
    gateway = getattr(getattr(report, "node", None), "gateway", None)
    return str(gateway.id) if gateway is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    state.current().config = session.config


def pytest_sessionfinish(session, exitstatus):
    writer = getattr(session.config, "_dropnorm_writer", None)
    if writer is not None:
        writer.write({"event": "finish", "exitstatus": int(exitstatus), "time": time.time(),
                      "interrupted": bool(session.shouldstop) or int(exitstatus) == 2})
        writer.close()
