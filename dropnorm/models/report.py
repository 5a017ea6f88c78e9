"""The model audit's report: report.json, report.md, report.html, junit.xml and repro-<clause>-<condition>.py
for each failure (and warning), in the layer audit's formats, plus the per-module table and the structure."""
from __future__ import annotations

import html
import json
import math
import pathlib
import sys
from xml.sax.saxutils import escape, quoteattr

from dropnorm.models.checks import ORDER, module_table
from dropnorm.spec.models import model_clauses

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def clause_status(results) -> str:
    sts = [r.status for r in results if r.status != "info"]
    if not sts:
        return "skip"
    if all(s == "skip" for s in sts):
        return "skip"
    return min((s for s in sts if s != "skip"), key=ORDER.index)


def summarise(audit, argv=None) -> dict:
    from dropnorm.report.environment import environment, provenance
    clauses = {}
    for cid, c in model_clauses().items():
        rs = [r for r in audit.results if r.clause == cid]
        conds = {}
        for r in rs:
            if r.status == "info":
                continue
            conds[r.condition] = r.status if r.condition not in conds else min(
                (conds[r.condition], r.status), key=ORDER.index)
        clauses[cid] = {"level": c.level, "title": c.title, "class": c["class"], "status": clause_status(rs),
                        "conditions": conds, "results": [r.as_dict() for r in rs]}
    must_bad = [k for k, v in clauses.items() if v["level"] == "MUST" and v["status"] in ("fail", "error")]
    warned = [k for k, v in clauses.items() if v["status"] in ("warn",) or (v["level"] == "SHOULD" and v["status"] == "fail")]
    ran = any(v["status"] in ("pass", "fail", "warn") for v in clauses.values())
    conformant = ran and not must_bad
    if not ran:
        verdict = "nothing could be checked"
    elif conformant:
        verdict = "passes every model clause that ran" + (f"; SHOULD warnings: {', '.join(warned)}" if warned else "")
    else:
        verdict = f"not conformant: {', '.join(must_bad)}" + (f"; SHOULD warnings: {', '.join(warned)}" if warned else "")
    return _jsonable({
        "kind": "model-audit", "target": audit.target.spec, "model": audit.target.description,
        "example_input": [list(t.shape) for t in audit.target.example],
        "provenance": provenance(list(argv or sys.argv[1:])), "environment": environment(),
        "verdict": verdict, "conformant": conformant, "exit": 0 if conformant else (2 if not ran else 1),
        "structure": audit.structure.summary() | {"min_training_batch": audit.min_batch,
                                                  "modules": audit.structure.modules},
        "clauses": clauses, "modules": module_table(audit), "timings_s": {k: round(v, 2) for k, v in
                                                                        audit.timings.items()},
        "notes": audit.notes, "seed": audit.seed, "checks": list(audit.checks),
    })


REPRO = '''#!/usr/bin/env python3
"""Reproduces {clause}/{condition} on {target}: {message}
Rebuilds the model from its TARGET, reruns the checks of {clause} (after the smallest-batch search where the
clause trains) with seed {seed}, prints what {clause}/{condition} observed against what it expected, and
exits 1 while the failure reproduces, 0 when it does not."""
import sys
sys.path[:0] = [{cwd!r}, {root!r}]
from dropnorm.models.repro import reproduce
from dropnorm.zoo.models import catalogue  # resolves a dropnorm:NAME target
sys.exit(reproduce({target!r}, {clause!r}, {condition!r}, seed={seed}, checks={checks!r}, catalogue=catalogue()))
'''


def write(audit, out_dir, argv=None) -> dict:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = summarise(audit, argv)
    scripts = {}
    if not audit.target.spec.startswith("<"):
        for cid, c in data["clauses"].items():
            for r in c["results"]:
                if r["status"] in ("fail", "warn"):
                    name = f"repro-{cid}-{r['condition']}.py"
                    if name in scripts.values():
                        continue
                    (out / name).write_text(REPRO.format(
                        clause=cid, condition=r["condition"], target=audit.target.spec,
                        message=r["message"].replace('"""', "'''")[:300], seed=audit.seed,
                        cwd=str(pathlib.Path.cwd()), root=str(ROOT), checks=list(audit.checks)), encoding="utf-8")
                    scripts[f"{cid}/{r['condition']}"] = name
                    r["reproduction"] = name
    data["reproductions"] = scripts
    (out / "report.json").write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    (out / "report.md").write_text(markdown(data), encoding="utf-8")
    (out / "report.html").write_text(to_html(data), encoding="utf-8")
    (out / "junit.xml").write_text(junit(data), encoding="utf-8")
    return data


def markdown(d: dict) -> str:
    s = d["structure"]
    lines = [f"# dropnorm audit-model: `{d['target']}` ({d['model']})", "",
             f"**{d['verdict']}** (exit {d['exit']}). Spec {d['provenance']['spec_version']}, dropnorm "
             f"{d['provenance']['dropnorm_version']}, commit {d['provenance'].get('dropnorm_commit') or '?'}; torch "
             f"{(d['environment'].get('torch') or {}).get('version', '?') if isinstance(d['environment'].get('torch'), dict) else d['environment'].get('torch', '?')}; "
             f"example input {d['example_input']}; {d['timings_s'].get('total', 0):.1f} s.", "",
             "## Structure", "",
             f"- {s['batchnorm_modules']} BatchNorm-family and {s['dropout_modules']} Dropout-family modules; "
             f"smallest training batch {s['min_training_batch'] if s['min_training_batch'] is not None else 'not found'}",
             f"- torch.fx: {'traced' if s['traced'] else 'does not trace (' + s['trace_error'] + ')'}; functional "
             f"calls: {', '.join(s['functional_calls']) or 'none'}",
             f"- pairs that fold ({len(s['fold_pairs'])}): {', '.join(s['fold_pairs'][:12]) or 'none'}"
             f"{', ...' if len(s['fold_pairs']) > 12 else ''}",
             f"- dropout feeding a BatchNorm: {', '.join(s['dropout_feeding_bn']) or 'none'}", "",
             "## Clauses", "", "| clause | level | status | conditions | title |", "|---|---|---|---|---|"]
    for cid, c in d["clauses"].items():
        conds = ", ".join(f"{k}: {v}" for k, v in c["conditions"].items())
        lines.append(f"| {cid} | {c['level']} | **{c['status']}** | {conds} | {c['title']} |")
    bad = [(cid, r) for cid, c in d["clauses"].items() for r in c["results"] if r["status"] in ("fail", "error", "warn")]
    if bad:
        lines += ["", "## Failures, errors and warnings", ""]
        for cid, r in bad:
            lines.append(f"- **{cid}/{r['condition']}** ({r['status']}): {r['message']}"
                         + (f" — modules: {', '.join(r['modules'][:8])}" if r["modules"] else "")
                         + (f"; observed {r.get('observed')}, expected {r.get('expected')}" if "observed" in r else "")
                         + (f"; tolerance {r['tolerance']:.3g}" if isinstance(r.get("tolerance"), float) else "")
                         + (f"; reproduce: `python {r['reproduction']}` (exits 1 while it fails)"
                            if r.get("reproduction") else ""))
    passed = [(cid, r) for cid, c in d["clauses"].items() for r in c["results"] if r["status"] == "pass"]
    if passed:
        lines += ["", "## What each passing check measured", ""]
        lines += [f"- {cid}/{r['condition']}: {r['message']}" for cid, r in passed]
    info = [(cid, r) for cid, c in d["clauses"].items() for r in c["results"] if r["status"] in ("info", "skip")]
    if info:
        lines += ["", "## Information and skipped checks", ""]
        lines += [f"- {cid}/{r['condition']} ({r['status']}): {r['message']}" for cid, r in info]
    lines += ["", "## Modules", "", "| module | type | " + " | ".join(d["clauses"]) + " |",
              "|---|---|" + "---|" * len(d["clauses"])]
    for row in d["modules"]:
        lines.append(f"| `{row['module']}` | {row['type']} | " + " | ".join(
            row["checks"].get(cid, "-") for cid in d["clauses"]) + " |")
    lines += ["", "## Time (s)", "", ", ".join(f"{k} {v}" for k, v in d["timings_s"].items())]
    if d["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in d["notes"]]
    return "\n".join(lines) + "\n"


def to_html(d: dict) -> str:
    """One self-contained page (no network): the report.md content as HTML tables."""
    def cell(v, status=False):
        cls = f' class="{v}"' if status else ""
        return f"<td{cls}>{html.escape(str(v))}</td>"
    rows = "".join(f"<tr>{cell(cid)}{cell(c['level'])}{cell(c['status'], True)}"
                   f"{cell(', '.join(f'{k}: {v}' for k, v in c['conditions'].items()))}{cell(c['title'])}</tr>"
                   for cid, c in d["clauses"].items())
    fails = "".join(f"<li><b>{html.escape(cid)}/{html.escape(r['condition'])}</b> ({html.escape(r['status'])}): "
                    f"{html.escape(r['message'])}{' — modules: ' + html.escape(', '.join(r['modules'][:8])) if r['modules'] else ''}"
                    f"{' — ' + html.escape(r['reproduction']) if r.get('reproduction') else ''}</li>"
                    for cid, c in d["clauses"].items() for r in c["results"] if r["status"] in ("fail", "error", "warn"))
    mods = "".join(f"<tr>{cell(row['module'])}{cell(row['type'])}"
                   + "".join(cell(row["checks"].get(cid, "-"), True) for cid in d["clauses"]) + "</tr>"
                   for row in d["modules"])
    s = d["structure"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>dropnorm audit-model {html.escape(d['target'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}
.fail,.error{{background:#f8d0d0}}.warn{{background:#fbeec0}}.pass{{background:#d8f0d8}}.skip{{color:#888}}</style></head><body>
<h1>dropnorm audit-model: {html.escape(d['target'])} ({html.escape(d['model'])})</h1>
<p><b>{html.escape(d['verdict'])}</b> (exit {d['exit']}); {d['timings_s'].get('total', 0):.1f} s</p>
<h2>Structure</h2><p>{s['batchnorm_modules']} BatchNorm-family, {s['dropout_modules']} Dropout-family modules; smallest
training batch {html.escape(str(s['min_training_batch']))}; fold pairs: {html.escape(', '.join(s['fold_pairs']) or 'none')};
functional calls: {html.escape(', '.join(s['functional_calls']) or 'none')}; dropout feeding BatchNorm:
{html.escape(', '.join(s['dropout_feeding_bn']) or 'none')}</p>
<h2>Clauses</h2><table><tr><th>clause</th><th>level</th><th>status</th><th>conditions</th><th>title</th></tr>{rows}</table>
<h2>Failures, errors and warnings</h2><ul>{fails or '<li>none</li>'}</ul>
<h2>Modules</h2><table><tr><th>module</th><th>type</th>{''.join(f'<th>{c}</th>' for c in d['clauses'])}</tr>{mods}</table>
</body></html>
"""


def junit(d: dict) -> str:
    cases = []
    for cid, c in d["clauses"].items():
        for cond, st in c["conditions"].items():
            msgs = " | ".join(r["message"] for r in c["results"] if r["condition"] == cond and r["status"] == st)
            body = ""
            if st in ("fail", "warn") and (st == "fail" or c["level"] == "SHOULD"):
                body = f"<failure message={quoteattr(msgs[:500])}>{escape(msgs)}</failure>"
            elif st == "error":
                body = f"<error message={quoteattr(msgs[:500])}>{escape(msgs)}</error>"
            elif st == "skip":
                body = f"<skipped message={quoteattr(msgs[:500])}/>"
            cases.append(f'<testcase classname="{cid}" name={quoteattr(cond)}>{body}</testcase>')
    n_fail = sum("<failure" in x for x in cases)
    n_err = sum("<error" in x for x in cases)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("dropnorm audit-model " + d["target"])} '
            f'tests="{len(cases)}" failures="{n_fail}" errors="{n_err}">\n' + "\n".join(cases) + "\n</testsuite>\n")
