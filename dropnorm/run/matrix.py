"""`dropnorm matrix`: one conformance matrix, implementation by clause, from many audits.

It audits every installed implementation (each in its own `dropnorm audit`
process, so each Keras backend gets its own process) or collects existing
report.json files, and renders matrix.md and matrix.html: the convention each
implementation is checked against in the top rows (spec/conventions.toml),
each column's verdict, audit profile and time, then one row per clause with
each implementation's status, the recorded defects linked to their write-ups
in docs/findings/, and under the table the command that reproduces each column.

Frameworks whose dependencies cannot share one environment (mxnet needs numpy < 2;
PaddlePaddle is 700 MB) are audited with another interpreter: `--python PATH`
names a venv's python in which dropnorm is installed (`pip install -e .`); an
implementation not importable here is audited with the first such interpreter
that has it.
"""
from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time

import jinja2

from dropnorm.spec import conventions
from dropnorm.adapters import ALIASES, PATHS, REGISTRY
from dropnorm.report import files
from dropnorm.report.markdown import cell
from dropnorm.report.model import class_verdicts
from dropnorm.spec import classes, clauses

# --impl -> the modules it needs (dropnorm.adapters.REGISTRY); audited when they all import
CANDIDATES = {name: mods for name, (_m, _extra, mods) in REGISTRY.items() if name not in ALIASES and name not in PATHS}
PATH_CANDIDATES = {name: mods for name, (_m, _extra, mods) in REGISTRY.items() if name in PATHS}
MARK = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "not-reached": "N/R", "known-defect": "BUG",
        "deviation": "dev", "not-provided": "n/p", "skip": "skip"}
CONVENTION_ROWS = (
    ("momentum weighs", lambda c: "new batch" if c.momentum_of == "new" else "old value"),
    ("momentum default", lambda c: "none (required)" if c.momentum_default is None else repr(c.momentum_default)),
    ("zero-debiased averages", lambda c: "yes" if c.zero_debias else "no"),
    ("running variance", lambda c: c.running_var),
    ("eps default", lambda c: repr(c.eps_default)),
    ("momentum=None", lambda c: "yes" if c.cumulative_average else "no"),
    ("mask broadcast", lambda c: c.mask_broadcast.split(";")[0].split(": the")[0][:40]),
)
VERDICT_ORDER = ("fail", "error", "not-reached", "known-defect", "deviation", "pass", "not-provided", "skip")


def installed(paths: bool = False) -> list[str]:
    """The implementations (and, with paths, torch's execution paths) whose modules import here."""
    pool = {**CANDIDATES, **(PATH_CANDIDATES if paths else {})}
    return [impl for impl, mods in pool.items() if all(importlib.util.find_spec(m) for m in mods)]


def installed_in(python: str, paths: bool = False) -> list[str]:
    """`installed()` as another interpreter sees it; [] (with a message) when dropnorm is not installed there."""
    code = f"import json; from dropnorm import matrix; print(json.dumps(matrix.installed(paths={paths!r})))"
    try:
        run = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"dropnorm matrix: cannot run {python}: {e}", file=sys.stderr)
        return []
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["?"])[-1]
        print(f"dropnorm matrix: {python} has no usable dropnorm ({last}); "
              "install it there with `pip install -e .`", file=sys.stderr)
        return []
    return json.loads(run.stdout.strip().splitlines()[-1])


def plan(impls: list[str], pythons: list[str], paths: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Which interpreter audits each implementation: this one when it has the framework, else the first
    --python that has it. Returns ({impl: python}, {impl: why it cannot be audited})."""
    here = installed(paths=True)
    others = {py: installed_in(py, paths=True) for py in pythons}
    wanted = impls or list(dict.fromkeys(here + [i for have in others.values() for i in have]))
    if not paths and not impls:
        wanted = [i for i in wanted if i not in PATHS]
    order = {name: k for k, name in enumerate(REGISTRY)}
    chosen, problems = {}, {}
    # columns in the order asked for, else the registry's
    for impl in (wanted if impls else sorted(wanted, key=lambda i: order.get(i, len(order)))):
        if impl in here:
            chosen[impl] = sys.executable
        elif found := next((py for py, have in others.items() if impl in have), None):
            chosen[impl] = found
        else:
            extra = REGISTRY.get(impl, (None, None, ()))[1]
            problems[impl] = "not installed" + (f" (pip install -e '.[{extra}]')" if extra else "")
    return chosen, problems


def audit_one(impl: str, python: str, out: pathlib.Path, profile: str, jobs: str,
              timeout: float | None = None) -> tuple[dict | None, str | None]:
    """Audit one implementation into out/reports/<impl> with its interpreter: (report, None) or (None, why)."""
    directory = out / "reports" / impl
    command = [python, "-m", "dropnorm.run.cli", "audit", f"--impl={impl}", f"--profile={profile}",
               f"--jobs={jobs}", f"--report-dir={directory}", "--quiet"]
    if timeout:
        command.append(f"--timeout={timeout:g}")
    print(f"dropnorm matrix: auditing {impl} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    print(f"dropnorm matrix: {impl}: exit {run.returncode} in {took:.0f} s", file=sys.stderr, flush=True)
    if not (directory / "report.json").exists():
        return None, (run.stderr.strip().splitlines() or [f"exit {run.returncode}"])[-1]
    shutil.rmtree(directory / files.PREVIOUS, ignore_errors=True)  # the matrix keeps its latest audit only
    report = files.load_report(directory)
    report["matrix"] = {"python": python, "wall_s": round(took, 1), "exit_status": run.returncode}
    files.write_atomic(directory / "matrix-run.json", json.dumps(report["matrix"], indent=1) + "\n")
    return report, None


def audit_all(plan_: dict[str, str], out: pathlib.Path, profile: str, jobs: str,
              timeout: float | None = None, parallel: int = 1) -> tuple[list[dict], dict[str, str]]:
    """Audit each implementation with its interpreter, `parallel` audits at a time (each its own process;
    the columns keep the plan's order); returns the reports and, per implementation that could not be
    audited, the reason."""
    # the slowest first (by the previous matrix's audit time), so that the last to finish is a short one
    order = sorted(plan_, key=lambda impl: -_previous_seconds(out / "reports" / impl))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {impl: pool.submit(audit_one, impl, plan_[impl], out, profile, jobs, timeout) for impl in order}
    done = {impl: futures[impl] for impl in plan_}
    reports, problems = [], {}
    for impl, future in done.items():
        report, why = future.result()
        if report is None:
            problems[impl] = why
        else:
            reports.append(report)
    return reports, problems


def _previous_seconds(directory: pathlib.Path) -> float:
    try:
        return float(json.loads((directory / "report.json").read_text())["run"]["duration_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def collect(source: str) -> dict:
    """A report from `--from`, with the matrix run record written beside it, if any."""
    report = files.load_report(source)
    directory = pathlib.Path(source)
    directory = directory if directory.is_dir() else directory.parent
    try:
        report["matrix"] = json.loads((directory / "matrix-run.json").read_text())
    except (OSError, ValueError):
        pass
    return report


def _column(report: dict) -> str:
    return report["implementation"]["name"]


def _findings(entry: dict) -> list[str]:
    """The write-ups (docs/findings/...) of the known defects recorded on one clause."""
    return sorted({d["finding"] for d in entry.get("deviations") or []
                   if d.get("kind") == "known-defect" and d.get("finding")})


def _counts(report: dict) -> str:
    s = report["summary"]
    return ", ".join(f"{s[k]} {k}" for k in VERDICT_ORDER if s.get(k))


def _command(report: dict) -> str:
    run = report.get("matrix") or {}
    command = report["provenance"].get("command") or f"dropnorm audit --impl {report['implementation']['spec']}"
    words, kept = shlex.split(command), []
    for a in words:  # where the report went and how loudly are not part of the case
        if kept and kept[-1] == "--report-dir":
            kept.pop()
        elif not a.startswith(("--report-dir=", "--quiet")):
            kept.append(a)
    command = shlex.join(kept[:-1] if kept and kept[-1] == "--report-dir" else kept)
    python = run.get("python")
    # abspath, not realpath: a venv's python is a symlink to the same base interpreter as every other venv's
    if python and os.path.abspath(python) != os.path.abspath(sys.executable):
        command = f"{python} -m dropnorm " + command.removeprefix("dropnorm ")
    return command


def _headline(r: dict) -> tuple[str, bool]:
    """The conformant row's cell and whether it is good news. A --clause/--layer selection is never
    'conformant' (most clauses did not run): its cell says whether the selected clauses hold."""
    selection = r.get("selection") or {}
    if selection.get("clauses") or selection.get("layers"):
        return ("selection holds" if r["verdict"].startswith("the selected clauses hold") else "selection fails",
                r["verdict"].startswith("the selected clauses hold"))
    return ("yes", True) if r["conformant"] else ("no", False)


def table(reports: list[dict]) -> dict:
    """The matrix as data: columns, convention rows and clause rows."""
    cols = []
    for r in reports:
        run = r.get("run") or {}
        cols.append({"name": _column(r), "version": r["implementation"]["version"],
                     "convention": r["implementation"].get("convention", "torch"),
                     "conformant": r["conformant"], "headline": _headline(r), "complete": r["complete"], "device": r["environment"]["device"],
                     "profile": r["environment"]["profile"], "seconds": run.get("duration_s"),
                     "counts": _counts(r), "command": _command(r), "provided": r["implementation"].get("provided"),
                     "commit": (r["provenance"].get("dropnorm_commit") or "")[:12],
                     "spec": r["provenance"].get("spec_version")})
    conv_rows = [{"label": label, "cells": [get(conventions.get(c["convention"])) for c in cols]}
                 for label, get in CONVENTION_ROWS]
    # one row per conformance class, by the headline's rules (computed for reports older than schema 1.1)
    verdicts = [{k["id"]: k for k in (r.get("classes") or class_verdicts(r["clauses"], r.get("strict", False),
                                                                          r.get("complete", True)))}
                for r in reports]
    class_rows = [{"id": k.id, "title": k.title,
                   "cells": [(v[k.id]["verdict"], ", ".join(v[k.id].get("failing", [])), v[k.id].get("known_defects", []))
                             if k.id in v else ("", "not audited", []) for v in verdicts]}
                  for k in classes().values()]
    status = [{e["id"]: e for e in r["clauses"]} for r in reports]
    clause_rows, findings = [], {}
    for cid, c in clauses().items():
        cells = [s.get(cid) for s in status]
        if not any(cells):
            continue
        row = []
        for col, x in zip(cols, cells):
            links = _findings(x) if x else []
            for f in links:
                findings.setdefault(f, {}).setdefault(col["name"], []).append(cid)
            row.append((x["status"], x["reason"], links) if x else ("", "not audited", []))
        clause_rows.append({"id": cid, "level": c.level, "title": c.title, "cells": row})
    return {"columns": cols, "conventions": conv_rows, "classes": class_rows, "clauses": clause_rows, "findings": findings,
            "provenance": reports[0]["provenance"] if reports else {}}


ROOT = pathlib.Path(__file__).resolve().parents[2]  # the checkout: reports name findings relative to it


def _link(path: str, out: pathlib.Path) -> str:
    """A finding's path (relative to the checkout, as reports name it) as a link from out; the path itself
    when the write-up is not on this machine (an installed wheel carries no docs/)."""
    target = ROOT / path
    return os.path.relpath(target, out.resolve()) if target.exists() else path


CLASS_MARK = {"conformant": "yes", "not conformant": "**NO**", "only known defects": "BUG", "not provided": "n/p"}


def markdown(t: dict, problems: dict[str, str], out: pathlib.Path = pathlib.Path(".")) -> str:
    cols = t["columns"]

    def class_mark(verdict, failing, links):
        text = CLASS_MARK.get(verdict, "")
        text = f"[{text}]({_link(links[0], out)})" if links else text
        return text + (f" ({cell(failing)})" if failing else "")

    def mark(status, links):
        text = MARK.get(status, "")
        return f"[{text}]({_link(links[0], out)})" if links else text

    head = "| | " + " | ".join(f"{cell(c['name'])} {cell(c['version'])}" for c in cols) + " |"
    out_lines = ["# dropnorm conformance matrix", "",
                 "Each implementation is checked against the convention its framework documents "
                 "(spec/conventions.toml, docs/conventions.md); convention differences are never failures. "
                 "pass; FAIL; ERROR (could not be tested); N/R (provided, but its checks did not all run); "
                 "BUG (a recorded known defect, linked to its write-up in docs/findings/; not conformance); "
                 "dev (a recorded convention, spec/deviations/); n/p (not provided); skip. "
                 "The class rows judge each conformance class (spec/CLAUSES.md) by the headline's rules: yes "
                 "(conformant), NO (an unrecorded failure, error or not-reached MUST clause), BUG (only recorded known "
                 "defects), n/p; the clauses that keep a class from conformant follow in brackets.", "", head,
                 "|---|" + "---|" * len(cols),
                 "| **conformant** | " + " | ".join((c["headline"][0] if c["headline"][1] else f"**{c['headline'][0]}**")
                                                    + ("" if c["complete"] else " (incomplete)") for c in cols) + " |",
                 "| clauses | " + " | ".join(cell(c["counts"]) for c in cols) + " |",
                 "| audit | " + " | ".join(cell(f"{c['profile']}, {c['seconds']:.0f} s" if c["seconds"] is not None
                                                else c["profile"]) for c in cols) + " |",
                 "| convention | " + " | ".join(c["convention"] for c in cols) + " |"]
    out_lines += [f"| {row['label']} | " + " | ".join(cell(x) for x in row["cells"]) + " |" for row in t["conventions"]]
    out_lines += [f"| **class: {cell(r['title'])}** | " + " | ".join(class_mark(v, why, links) for v, why, links in r["cells"])
                  + " |" for r in t["classes"]]
    out_lines += [f"| {r['id']} ({r['level']}) | " + " | ".join(mark(s, links) for s, _, links in r["cells"]) + " |"
                  for r in t["clauses"]]
    if t["findings"]:
        out_lines += ["", "## Recorded defects (BUG cells)", ""]
        out_lines += [f"- [{cell(f)}]({_link(f, out)}): " + "; ".join(f"{cell(impl)} ({', '.join(ids)})"
                                                                        for impl, ids in by_impl.items())
                      for f, by_impl in sorted(t["findings"].items())]
    if problems:
        out_lines += ["", "Not audited:"] + [f"- {impl}: {cell(why)}" for impl, why in problems.items()]
    prov = t["provenance"]
    out_lines += ["", f"Made by `dropnorm matrix` (spec {prov.get('spec_version')}, dropnorm {prov.get('dropnorm_version')}); "
                      "each column's report.json is reproduced by the command below (the audit's time is the "
                      "audit's own wall time on the machine named under the table).", ""]
    out_lines += [f"- {cell(c['name'])}: `{c['command']}`" + (f" (commit {c['commit']})" if c["commit"] else "")
                  for c in cols]
    out_lines += ["", "Audited with: " + "; ".join(f"{c['name']} {c['version']} ({c['device']}, profile {c['profile']})"
                                                   for c in cols)]
    return "\n".join(out_lines) + "\n"


_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>dropnorm conformance matrix</title>
<style>body{font:13px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}th{background:#f4f4f4}
.pass{background:#e3f4e6}.fail,.error,.not-reached{background:#fbe4e4;font-weight:600}
.known-defect{background:#f8d7a8;font-weight:600}.deviation{background:#fff3cd}
.not-provided,.skip{color:#777}.conv td{background:#eef3fb}code{font-size:12px}</style></head><body>
<h1>dropnorm conformance matrix</h1>
<p>Each implementation is checked against the convention its framework documents; hover a cell for the reason.
BUG: a recorded known defect (linked to its write-up); it is not conformance.</p>
<table><tr><th></th>{% for c in t.columns %}<th>{{ c.name }} {{ c.version }}</th>{% endfor %}</tr>
<tr><th>conformant</th>{% for c in t.columns %}<td class="{{ 'pass' if c.headline[1] else 'fail' }}">{{ c.headline[0] }}{% if not c.complete %} (incomplete){% endif %}</td>{% endfor %}</tr>
<tr><th>clauses</th>{% for c in t.columns %}<td>{{ c.counts }}</td>{% endfor %}</tr>
<tr><th>audit</th>{% for c in t.columns %}<td>{{ c.profile }}{% if c.seconds is not none %}, {{ '%.0f' % c.seconds }} s{% endif %}</td>{% endfor %}</tr>
<tr class="conv"><th>convention</th>{% for c in t.columns %}<td>{{ c.convention }}</td>{% endfor %}</tr>
{% for row in t.conventions %}<tr class="conv"><th>{{ row.label }}</th>{% for x in row.cells %}<td>{{ x }}</td>{% endfor %}</tr>
{% endfor %}{% for r in t.classes %}<tr><th>class: {{ r.title }}</th>{% for v, why, links in r.cells %}<td class="{{ {'conformant': 'pass', 'not conformant': 'fail', 'only known defects': 'known-defect'}.get(v, 'not-provided') }}" title="{{ why }}">{{ v }}{% if why %} ({{ why }}){% endif %}</td>{% endfor %}</tr>
{% endfor %}{% for r in t.clauses %}<tr><th title="{{ r.title }}">{{ r.id }} ({{ r.level }})</th>{% for s, why, links in r.cells %}<td class="{{ s }}" title="{{ why }}">{% if links %}<a href="{{ link(links[0]) }}">{{ mark.get(s, '') }}</a>{% else %}{{ mark.get(s, '') }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if t.findings %}<h2>Recorded defects</h2><ul>{% for f, by_impl in t.findings|dictsort %}<li><a href="{{ link(f) }}">{{ f }}</a>: {% for impl, ids in by_impl.items() %}{{ impl }} ({{ ids|join(', ') }}){% if not loop.last %}; {% endif %}{% endfor %}</li>{% endfor %}</ul>{% endif %}
{% if problems %}<h2>Not audited</h2><ul>{% for impl, why in problems.items() %}<li>{{ impl }}: {{ why }}</li>{% endfor %}</ul>{% endif %}
<h2>Reproduce a column</h2><ul>{% for c in t.columns %}<li>{{ c.name }}: <code>{{ c.command }}</code>{% if c.commit %} (commit {{ c.commit }}){% endif %}</li>{% endfor %}</ul>
</body></html>
""")


def html(t: dict, problems: dict[str, str], out: pathlib.Path = pathlib.Path(".")) -> str:
    return _TEMPLATE.render(t=t, problems=problems, mark=MARK, link=lambda f: _link(f, out))


def write(out: pathlib.Path, reports: list[dict], problems: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    t = table(reports)
    files.write_atomic(out / "matrix.md", markdown(t, problems, out))
    files.write_atomic(out / "matrix.html", html(t, problems, out))
