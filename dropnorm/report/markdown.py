"""report.md: a summary for a pull-request comment or a CI job summary, failures first."""
from __future__ import annotations

import re

from dropnorm.report import replay
from dropnorm.report.model import FAILING, STATUSES, class_verdicts, failure_order

ICON = {"fail": "FAIL", "error": "ERROR", "not-reached": "NOT REACHED", "known-defect": "KNOWN DEFECT",
        "deviation": "deviation", "pass": "pass", "not-provided": "not provided", "skip": "skip"}
KIND_SHORT = {"Dropout": "Do", "Dropout2d": "D2", "BatchNorm1d": "BN1", "BatchNorm2d": "BN2", "BatchNorm3d": "BN3",
              "Dropout1d": "D1", "Dropout3d": "D3", "AlphaDropout": "AD", "FeatureAlphaDropout": "FAD"}


def cell(text) -> str:
    """Text safe in a table cell: one line, no pipes, no HTML (GitHub renders HTML in markdown)."""
    text = " ".join(str(text).split())
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "'")):
        text = text.replace(a, b)
    return text if len(text) <= 160 else text[:157] + "..."


def fence(text: str) -> str:
    """A code block that no backtick run in `text` can close early."""
    longest = max((len(run) for run in re.findall("`+", str(text))), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}\n{text}\n{ticks}"


def headline(report: dict, esc=cell) -> str:
    impl = report["implementation"]
    return f"{esc(impl['name'])} {esc(impl['version'])}: {esc(report['verdict'])}"


def by_layer(e: dict) -> str:
    """The clause's status per layer kind, e.g. 'BN1 pass, BN2 fail, BN3 not-provided'."""
    return ", ".join(f"{KIND_SHORT.get(k, k)} {v['status']}" for k, v in e.get("by_layer", {}).items())


def layers_line(report: dict) -> str:
    lay = report.get("layers") or {}
    return (f"Layers provided: {', '.join(lay.get('provided', [])) or 'none'}"
            + (f"; missing: {', '.join(lay['missing'])} (their clauses are not-provided)" if lay.get("missing") else ""))


def stale_line(report: dict) -> str:
    stale = [d["key"] for d in report.get("deviations", []) if d["stale"]]
    return f"Stale deviations (recorded, met by no example of this run): {'; '.join(stale)}" if stale else ""


def classes_of(report: dict) -> list[dict]:
    """The report's class verdicts (computed from its clauses for a report older than schema 1.1)."""
    return report.get("classes") or class_verdicts(report["clauses"], report.get("strict", False),
                                                   report.get("complete", True))


def class_rows(report: dict) -> list[str]:
    """One table row per conformance class: its verdict and what keeps it from conformant."""
    rows = ["| class | verdict | failing (by severity) | SHOULD not met | known defects |", "|---|---|---|---|---|"]
    for k in classes_of(report):
        rows.append(f"| {cell(k['title'])} | {'**' + k['verdict'] + '**' if k['verdict'] != 'conformant' else k['verdict']} "
                    f"| {', '.join(k.get('failing', [])) or '-'} | {', '.join(k.get('should_failures', [])) or '-'} "
                    f"| {', '.join(f'[{f.rsplit(chr(47), 1)[-1]}]({f})' for f in k.get('known_defects', [])) or '-'} |")
    return rows


def ordered_rows(report: dict) -> list[dict]:
    """The clauses as every report lists them: failing ones first, the most severe first (a wrong value
    returned silently), then the rest by status, level and id."""
    return sorted(report["clauses"], key=lambda e: (0,) + failure_order(e) if e["status"] in FAILING
                  else (1, STATUSES.index(e["status"]), e["level"] != "MUST", e["id"]))


def render(report: dict) -> str:
    s, env, prov = report["summary"], report["environment"], report["provenance"]
    rows = ordered_rows(report)
    out = [f"# dropnorm conformance: {headline(report)}", "",
           " · ".join(f"{s[k]} {k}" for k in STATUSES if s[k]) + f" of {s['total']} clauses"
           + (f"; {s['should_failures']} SHOULD clause(s) failing" if s["should_failures"] else "")
           + (" (strict: SHOULD failures count)" if report["strict"] else ""), "",
           f"Spec {prov['spec_version']}, dropnorm {prov['dropnorm_version']}"
           f"{' (' + prov['dropnorm_commit'][:12] + ')' if prov['dropnorm_commit'] else ''}; "
           f"device {env['device']}, profile {env['profile']} ({env['max_examples']} examples per test), "
           f"seed {env['seed'] if env['seed'] is not None else 'derandomized'}; "
           f"torch {(env['torch'] or {}).get('version', 'absent')}, numpy {env['numpy']}, "
           f"python {env['python']}; {report['run']['tests']} tests in {report['run']['duration_s']:.1f} s.", "",
           f"Command: `{cell(prov['command'])}`", "", layers_line(report), ""]
    if stale_line(report):
        out += [cell(stale_line(report)), ""]
    out += ["## Conformance classes", ""] + class_rows(report) + ["", "## Clauses", ""]
    out += ["| status | severity | clause | level | per layer | title | detail |", "|---|---|---|---|---|---|---|"]
    for e in rows:
        detail = e["reason"] if e["status"] != "pass" else pass_detail(e)
        out.append(f"| {ICON[e['status']]} | {e.get('severity') or ''} | {e['id']} | {e['level']} | {by_layer(e)} "
                   f"| {cell(e['title'])} | {cell(detail)} |")
    failures = [e for e in rows if e["failure"] or e["errors"]]
    if failures:
        out += ["", "## Failures", ""]
    for e in failures:
        out.append(f"### {e['id']} ({e['level']}{', ' + e['severity'] if e.get('severity') else ''}): "
                   f"{cell(e['title'])}")
        out.append("")
        f = e["failure"]
        if f:
            out += [f"- check: `{cell(f['condition'])}` in `{cell(f['test'])}`",
                    f"- observed: {cell(f['observed'] or '(see the message)')}",
                    f"- expected: {cell(f['expected'] or '(see the message)')}"]
            if f.get("script_file"):
                out.append(f"- standalone script: `{f['script_file']}`")
            if f.get("standalone"):
                out.append(f"- run alone after the audit: {cell(replay.describe(f['standalone']))}")
            out += ["", "<details><summary>message, counterexample and reproduction (exits 1 while it fails)</summary>",
                    "",
                    fence(f["message"] + ("\n\n" + f["counterexample"] if f["counterexample"] else "")), "",
                    fence(short_script(f)), "", "</details>", ""]
        for err in e["errors"][:3]:
            out += [f"- error in `{cell(err['test'])}`:", "", fence(err["error"]), ""]
    return "\n".join(out) + "\n"


def short_script(f: dict, limit: int = 8000) -> str:
    """The reproduction for a page: large arrays shortened, cut at `limit` (the repro file is whole)."""
    from dropnorm.reproduce import abbreviated
    return abbreviated(f.get("script") or "", limit)


def pass_detail(e: dict) -> str:
    examples = sum(t["examples"] for t in e["tests"])
    bits = [f"{len(e['tests'])} test(s), {examples} examples"]
    if e["tolerance"]:
        ratio = e["tolerance"]["max_error_over_tolerance"]
        bits.append(f"max error {ratio:.2g} x tolerance" if isinstance(ratio, (int, float))
                    else f"max error {ratio} x tolerance")
    if e["statistics"]:
        bits.append(f"{len(e['statistics'])} exact tests, min p {min(x['pvalue'] for x in e['statistics']):.2g}")
    return "; ".join(bits)
