"""`dropnorm matrix`: one conformance matrix, implementation by clause, from many audits.

It audits every installed implementation (each in its own `dropnorm audit`
process, so each Keras backend gets its own process) or collects existing
report.json files, and renders matrix.md and matrix.html: the convention each
implementation is checked against in the top rows (spec/conventions.toml),
then one row per clause with each implementation's status.
"""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import jinja2

from dropnorm import conventions
from dropnorm.adapters import ALIASES, PATHS, REGISTRY
from dropnorm.report import files
from dropnorm.report.markdown import cell
from dropnorm.spec import clauses

# --impl -> the modules it needs (dropnorm.adapters.REGISTRY); audited when they all import
CANDIDATES = {name: mods for name, (_m, _extra, mods) in REGISTRY.items() if name not in ALIASES and name not in PATHS}
MARK = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "not-reached": "N/R", "known-defect": "BUG",
        "deviation": "dev", "not-provided": "n/p", "skip": "skip"}
CONVENTION_ROWS = (
    ("momentum weighs", lambda c: "new batch" if c.momentum_of == "new" else "old value"),
    ("momentum default", lambda c: repr(c.momentum_default)),
    ("running variance", lambda c: c.running_var),
    ("eps default", lambda c: repr(c.eps_default)),
    ("momentum=None", lambda c: "yes" if c.cumulative_average else "no"),
    ("mask broadcast", lambda c: c.mask_broadcast.split(";")[0].split(": the")[0][:40]),
)


def installed() -> list[str]:
    return [impl for impl, mods in CANDIDATES.items() if all(importlib.util.find_spec(m) for m in mods)]


def audit_all(impls: list[str], out: pathlib.Path, profile: str, jobs: str) -> tuple[list[dict], dict[str, str]]:
    """Audit each implementation into out/reports/<impl>; returns the reports and, per
    implementation that could not be audited, the reason."""
    reports, problems = [], {}
    for impl in impls:
        directory = out / "reports" / impl
        print(f"dropnorm matrix: auditing {impl} ...", file=sys.stderr, flush=True)
        run = subprocess.run([sys.executable, "-m", "dropnorm.cli", "audit", f"--impl={impl}",
                              f"--profile={profile}", f"--jobs={jobs}", f"--report-dir={directory}", "--quiet"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if run.returncode in (0, 1) or (directory / "report.json").exists():
            reports.append(files.load_report(directory))
        else:
            problems[impl] = (run.stderr.strip().splitlines() or [f"exit {run.returncode}"])[-1]
    return reports, problems


def _column(report: dict) -> str:
    return report["implementation"]["name"]


def table(reports: list[dict]) -> dict:
    """The matrix as data: columns, convention rows and clause rows."""
    cols = [{"name": _column(r), "version": r["implementation"]["version"],
             "convention": r["implementation"].get("convention", "torch"),
             "conformant": r["conformant"], "complete": r["complete"], "device": r["environment"]["device"],
             "profile": r["environment"]["profile"]} for r in reports]
    conv_rows = [{"label": label, "cells": [get(conventions.get(c["convention"])) for c in cols]}
                 for label, get in CONVENTION_ROWS]
    status = [{e["id"]: e for e in r["clauses"]} for r in reports]
    clause_rows = []
    for cid, c in clauses().items():
        cells = [s.get(cid) for s in status]
        if not any(cells):
            continue
        clause_rows.append({"id": cid, "level": c.level, "title": c.title,
                            "cells": [(x["status"], x["reason"]) if x else ("", "not audited") for x in cells]})
    return {"columns": cols, "conventions": conv_rows, "clauses": clause_rows,
            "provenance": reports[0]["provenance"] if reports else {}}


def markdown(t: dict, problems: dict[str, str]) -> str:
    cols = t["columns"]
    head = "| | " + " | ".join(f"{cell(c['name'])} {cell(c['version'])}" for c in cols) + " |"
    out = ["# dropnorm conformance matrix", "",
           "Each implementation is checked against the convention its framework documents "
           "(spec/conventions.toml, docs/conventions.md); convention differences are never failures. "
           "pass, FAIL, ERROR (could not be tested), dev (recorded deviation, spec/deviations/), "
           "n/p (not provided), skip.", "", head, "|---|" + "---|" * len(cols),
           "| **conformant** | " + " | ".join(("yes" if c["conformant"] else "**no**")
                                              + ("" if c["complete"] else " (incomplete)") for c in cols) + " |",
           "| convention | " + " | ".join(c["convention"] for c in cols) + " |"]
    out += [f"| {row['label']} | " + " | ".join(cell(x) for x in row["cells"]) + " |" for row in t["conventions"]]
    out += [f"| {r['id']} ({r['level']}) | " + " | ".join(MARK.get(s, "") for s, _ in r["cells"]) + " |"
            for r in t["clauses"]]
    if problems:
        out += ["", "Not audited:"] + [f"- {impl}: {cell(why)}" for impl, why in problems.items()]
    prov = t["provenance"]
    out += ["", f"Made by `dropnorm matrix` (spec {prov['spec_version']}, dropnorm {prov['dropnorm_version']}"
                + (f", commit {prov['dropnorm_commit'][:12]}" if prov.get("dropnorm_commit") else "") + "); "
                "each column's report.json is reproduced by `dropnorm audit --impl NAME --profile PROFILE`."]
    out += ["", "Audited with: " + "; ".join(f"{c['name']} {c['version']} ({c['device']}, profile {c['profile']})"
                                             for c in cols)]
    return "\n".join(out) + "\n"


_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>dropnorm conformance matrix</title>
<style>body{font:13px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}th{background:#f4f4f4}
.pass{background:#e3f4e6}.fail,.error{background:#fbe4e4;font-weight:600}.deviation{background:#fff3cd}
.not-provided,.skip{color:#777}.conv td{background:#eef3fb}</style></head><body>
<h1>dropnorm conformance matrix</h1>
<p>Each implementation is checked against the convention its framework documents; hover a cell for the reason.</p>
<table><tr><th></th>{% for c in t.columns %}<th>{{ c.name }} {{ c.version }}</th>{% endfor %}</tr>
<tr><th>conformant</th>{% for c in t.columns %}<td class="{{ 'pass' if c.conformant else 'fail' }}">{{ 'yes' if c.conformant else 'no' }}{% if not c.complete %} (incomplete){% endif %}</td>{% endfor %}</tr>
<tr class="conv"><th>convention</th>{% for c in t.columns %}<td>{{ c.convention }}</td>{% endfor %}</tr>
{% for row in t.conventions %}<tr class="conv"><th>{{ row.label }}</th>{% for x in row.cells %}<td>{{ x }}</td>{% endfor %}</tr>
{% endfor %}{% for r in t.clauses %}<tr><th title="{{ r.title }}">{{ r.id }} ({{ r.level }})</th>{% for s, why in r.cells %}<td class="{{ s }}" title="{{ why }}">{{ mark.get(s, '') }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if problems %}<h2>Not audited</h2><ul>{% for impl, why in problems.items() %}<li>{{ impl }}: {{ why }}</li>{% endfor %}</ul>{% endif %}
</body></html>
""")


def html(t: dict, problems: dict[str, str]) -> str:
    return _TEMPLATE.render(t=t, problems=problems, mark=MARK)


def write(out: pathlib.Path, reports: list[dict], problems: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    t = table(reports)
    files.write_atomic(out / "matrix.md", markdown(t, problems))
    files.write_atomic(out / "matrix.html", html(t, problems))
