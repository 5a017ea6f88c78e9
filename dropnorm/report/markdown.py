"""report.md: a summary for a pull-request comment or a CI job summary, failures first."""
from __future__ import annotations

import re

from dropnorm.report import replay
from dropnorm.report.model import FAILING, STATUSES, class_verdicts, failure_order

ICON = {"fail": "FAIL", "error": "ERROR", "not-reached": "NOT REACHED", "known-defect": "KNOWN DEFECT",
        "deviation": "deviation", "pass": "pass", "not-provided": "not provided", "skip": "skip"}
KIND_SHORT = {"Dropout": "Do", "Dropout2d": "D2", "BatchNorm1d": "BN1", "BatchNorm2d": "BN2", "BatchNorm3d": "BN3",
              "Dropout1d": "D1", "Dropout3d": "D3", "AlphaDropout": "AD", "FeatureAlphaDropout": "FAD"}


def cell(text, limit: int = 160) -> str:
    """Text safe in a table cell: one line, no pipes, no HTML (GitHub renders HTML in markdown); at most
    `limit` characters before escaping, shortened by keep_case (the failing case's dtype, shape, layout
    and mode stay)."""
    text = keep_case(str(text), limit)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "'")):
        text = text.replace(a, b)
    return text


# ------------------------------------------------------------------ shortening that keeps the case
# torch.nn's defaults: a constructor shown in a message keeps its positional arguments and the keywords
# that differ from these
CTOR_DEFAULTS = {"eps": 1e-05, "momentum": 0.1, "affine": "True", "track_running_stats": "True", "p": 0.5,
                 "inplace": "False", "device": "None", "dtype": "None"}
_CTOR = re.compile(r"\b((?:Lazy|Sync)?BatchNorm(?:\dd)?|(?:Feature)?AlphaDropout|Dropout(?:\dd)?)\(([^()\[\]]*)\)")
_CASE_TOKENS = re.compile(
    r"(?<!index )\((?:\d+(?:, \d+)*,?)?\)"                        # a shape (not an index)
    r"|\b(?:bfloat16|float16|float32|float64|half|double)\b"        # a dtype
    r"|\b(?:channels_last_3d|channels_last|contiguous|non-contiguous|strided|transposed)\b"  # a layout
    r"|\b(?:training|train|eval|inference(?: mode)?|no-grad)\b"     # a mode
    r"|\b(?:Lazy|Sync)?BatchNorm(?:\dd)?\([^()\[\]]*\)|\b(?:Feature)?AlphaDropout\([^()\[\]]*\)"
    r"|\bDropout(?:\dd)?\([^()\[\]]*\)")                           # a (shortened) constructor
_HEAD = re.compile(r"^(?:[A-Za-z0-9]+: )?[A-Z0-9]+(?:-[A-Z0-9]+)+/[^:\s]+:")   # "Kind: CLAUSE/condition:"
_VALUES = re.compile(r"\bgot [^,\[\]]{1,40}, expected [^\[\];:]{1,40}?(?= at index|[:;\[]|$)")  # short values
_LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{7,}(?:e[-+]?\d+)?(?![\w.])")
ELLIPSIS = "..."


def _is_default(key: str, value: str) -> bool:
    if key not in CTOR_DEFAULTS:
        return False
    want = CTOR_DEFAULTS[key]
    if isinstance(want, float):
        try:
            return float(value) == want
        except ValueError:
            return False
    return value == want


def short_constructor(match: re.Match) -> str:
    """`BatchNorm2d(eps=2.28e-05, momentum=None, affine=True, track_running_stats=True)` ->
    `BatchNorm2d(eps=2.28e-05, momentum=None)`: the class, positional arguments, non-default keywords."""
    name, args = match.group(1), match.group(2)
    kept = [a for a in (x.strip() for x in args.split(", ")) if a and not ("=" in a and _is_default(*a.split("=", 1)))]
    return f"{name}({', '.join(kept)})"


def keep_case(text: str, limit: int) -> str:
    """`text` on one line in at most `limit` characters, never cutting what distinguishes the failing
    case: constructors first lose their default keywords, then the longest stretches between the
    protected tokens (the 'Kind: CLAUSE/condition:' head, shapes, dtypes, layouts, modes and
    constructors, and short 'got X, expected Y' values; long floats rounded to 6 digits first) lose their
    middle to '...'; the values lose their protection when the rest does not fit otherwise. Only when
    the case's own tokens exceed the limit is the end cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    text = _CTOR.sub(short_constructor, text)
    if len(text) <= limit:
        return text
    text = _LONG_FLOAT.sub(lambda m: f"{float(m.group(0)):.6g}", text)  # 0.9030202031135559 -> 0.90302
    if len(text) <= limit:
        return text
    text = _STEPS.sub(_last_steps, text)  # a call sequence keeps its last two steps, the failing one last
    if len(text) <= limit:
        return text
    case = [m.span() for m in _CASE_TOKENS.finditer(text)]
    head = _HEAD.match(text)
    head = [(0, head.end())] if head else []
    values = _VALUES.search(text)
    values = [values.span()] if values else []
    # the values are protected while they fit; the case and the head always are
    for spans in (head + values + case, head + case):
        out = _shorten_between(text, spans, limit)
        if len(out) <= limit:
            return out
    return out[:limit - len(ELLIPSIS)] + ELLIPSIS


_STEPS = re.compile(r"steps: ([^\]]*)")


def _last_steps(m: re.Match) -> str:
    """'steps: a -> b -> c -> d' (the stateful tests' call sequence) as 'steps: ... -> c -> d'."""
    steps = m.group(1).split(" -> ")
    return "steps: " + (" -> ".join(steps) if len(steps) <= 2 else "... -> " + " -> ".join(steps[-2:]))


def _shorten_between(text: str, spans: list, limit: int) -> str:
    """`text` with the longest stretches outside `spans` elided until it fits (if it can)."""
    pieces, at = [], 0   # [text, protected]
    for a, b in sorted(spans):
        if a < at:
            if b > at:
                pieces[-1][0] += text[at:b]
                at = b
            continue
        if a > at:
            pieces.append([text[at:a], False])
        pieces.append([text[a:b], True])
        at = b
    if at < len(text):
        pieces.append([text[at:], False])
    excess = len(text) - limit
    for least in (8, 0):  # first keep a little of every stretch, then as little as '...'
        for piece in sorted((p for p in pieces if not p[1]), key=lambda p: -len(p[0])):
            if excess <= 0:
                break
            length = len(piece[0])
            keep = max(least, length - excess - len(ELLIPSIS))
            if keep + len(ELLIPSIS) >= length:
                continue
            piece[0] = _elide(piece[0], keep)
            excess -= length - len(piece[0])
    return "".join(p for p, _ in pieces)


def _elide(s: str, keep: int) -> str:
    """`s` with its middle replaced by '...', keeping `keep` characters (head and tail, at word ends
    where that loses little)."""
    if keep <= 0:
        return ELLIPSIS
    h = keep - keep // 3
    t = keep - h
    head, tail = s[:h], s[len(s) - t:] if t else ""
    cut = head.rfind(" ")
    if cut >= h * 2 // 3 and not head.endswith(" "):
        head = head[:cut + 1]
    cut = tail.find(" ")
    if 0 <= cut <= t // 3:
        tail = tail[cut:]
    return head + ELLIPSIS + tail


def fence(text: str) -> str:
    """A code block that no backtick run in `text` can close early."""
    longest = max((len(run) for run in re.findall("`+", str(text))), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}\n{text}\n{ticks}"


def headline(report: dict, esc=cell) -> str:
    impl = report["implementation"]
    return f"{esc(impl['name'])} {esc(impl['version'])}: {esc(report['verdict'])}"


def by_layer(e: dict) -> str:
    """The clause's status per layer kind, e.g. 'BN1 pass, BN2 fail, BN3 not-provided', with the conditions
    that never ran on a kind (conditions_not_run), e.g. 'D1 not-reached (not run: no-alias)'."""
    return ", ".join(f"{KIND_SHORT.get(k, k)} {v['status']}"
                     + (f" (not run: {', '.join(v['conditions_not_run'])})" if v.get("conditions_not_run") else "")
                     for k, v in e.get("by_layer", {}).items())


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
    out[4:4] = diagnosis_rows(report)  # at the top: the failures grouped by likely cause
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


def diagnosis_rows(report: dict) -> list[str]:
    """'Likely causes': one row per cause (most likely first) and the unexplained failures; nothing for a
    report without failures or older than the diagnosis."""
    causes = report.get("diagnosis") or []
    if not causes:
        return []
    rows = ["## Likely causes", "", "| # | likely cause | confidence | explains | evidence |", "|---|---|---|---|---|"]
    for i, c in enumerate(causes, 1):
        unexplained = c["cause"] == "unexplained"
        rows.append(f"| {'-' if unexplained else i} | {'**unexplained**' if unexplained else cell(c['cause'])} "
                    f"| {'-' if unexplained else format(c['confidence'], '.2f')} "
                    f"| {cell(', '.join(c['explains']), 2000)} | {cell(c['evidence'], 300)} |")
    return rows + [""]


def short_script(f: dict, limit: int = 8000) -> str:
    """The reproduction for a page: large arrays shortened, cut at `limit` (the repro file is whole)."""
    from dropnorm.suite.reproduce import abbreviated
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
