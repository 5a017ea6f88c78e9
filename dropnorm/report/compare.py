"""`dropnorm compare A B`: what changed between two reports, clause by clause.

A regression is a clause that was not failing in A (pass, deviation, not-provided, skip)
and fails in B (fail, error, not-reached, known-defect). A fix is a failing clause in A
that is pass, deviation or not-provided in B: a clause that went from fail to skip or
not-reached was not judged in B, so it is "unchecked", never "fixed". Other changes are
listed as changed, and so is a clause failing in both whose failure moved: another condition, or
the same condition on another case (issue 25: after a fix, the clause that still fails on a bfloat16
case must not read "no change"). Differences in what the two runs did (profile, seed, selection, spec
version, device, completeness, which classes of a torch-module file are torch.nn's own) are
listed as warnings: a diff across them compares different checks.
"""
from __future__ import annotations

from dropnorm.report.model import FAILING

JUDGED_OK = ("pass", "deviation", "not-provided")


def compare(a: dict, b: dict) -> dict:
    before = {e["id"]: e for e in a["clauses"]}
    after = {e["id"]: e for e in b["clauses"]}
    out = {"regressed": [], "fixed": [], "unchecked": [], "changed": [],
           "added": sorted(after.keys() - before.keys()), "removed": sorted(before.keys() - after.keys()),
           "warnings": warnings(a, b)}
    for cid in sorted(before.keys() & after.keys()):
        x, y = before[cid]["status"], after[cid]["status"]
        if x == y:
            moved = _failure_moved(before[cid], after[cid]) if x in FAILING else None
            if moved:
                out["changed"].append({"id": cid, "level": after[cid]["level"], "before": x, "after": y,
                                       "reason": f"{moved}; now: {after[cid]['reason']}"})
            continue
        row = {"id": cid, "level": after[cid]["level"], "before": x, "after": y, "reason": after[cid]["reason"]}
        if y in FAILING and x not in FAILING:
            key = "regressed"
        elif x in FAILING and y in JUDGED_OK:
            key = "fixed"
        elif x in FAILING and y not in FAILING:
            key = "unchecked"
        else:
            key = "changed"
        out[key].append(row)
    return out


def _failure_moved(x: dict, y: dict) -> str | None:
    """How a clause failing in both reports fails differently in the second (its condition, or the case its
    message names), else None."""
    fx, fy = x.get("failure") or {}, y.get("failure") or {}
    if fx.get("condition") != fy.get("condition"):
        return f"the failing condition moved: {fx.get('condition')} -> {fy.get('condition')}"
    if (fx.get("message") or x.get("reason")) != (fy.get("message") or y.get("reason")):
        return "the same condition fails on another case"
    return None


def warnings(a: dict, b: dict) -> list[str]:
    """What differs between the two runs, beyond the implementation."""
    out = []
    ea, eb = a["environment"], b["environment"]
    for label, x, y in (("profile", ea.get("profile"), eb.get("profile")), ("seed", ea.get("seed"), eb.get("seed")),
                        ("device", ea.get("device"), eb.get("device")),
                        ("clause selection", a["selection"].get("clauses"), b["selection"].get("clauses")),
                        ("layer selection", a["selection"].get("layers"), b["selection"].get("layers")),
                        ("spec version", a["provenance"]["spec_version"], b["provenance"]["spec_version"])):
        if x != y:
            out.append(f"{label} differs: {x} vs {y}")
    # a torch-module file's classes that are torch.nn's own are judged under torch's record (issue 25): where
    # the two files differ in them, a status may change because whose record applies changed
    own_a, own_b = (r.get("implementation", {}).get("torch_own_kinds") for r in (a, b))
    if (own_a or own_b) and sorted(own_a or []) != sorted(own_b or []):
        out.append(f"torch's own classes differ (judged under torch's recorded deviations): {own_a or []} vs "
                   f"{own_b or []}")
    for name, r in (("A", a), ("B", b)):
        if not r.get("complete", True):
            out.append(f"{name} is incomplete (the audit was interrupted)")
    return out


def render(a: dict, b: dict, diff: dict) -> str:
    def name(r):
        i = r["implementation"]
        return f"{i['name']} {i['version']} ({r['environment']['device']}, {r['run']['finished']})"

    lines = [f"A: {name(a)}: {a.get('verdict') or ('conformant' if a['conformant'] else 'not conformant')}",
             f"B: {name(b)}: {b.get('verdict') or ('conformant' if b['conformant'] else 'not conformant')}"]
    lines += [f"warning: {w}" for w in diff["warnings"]]
    for key in ("regressed", "fixed", "unchecked", "changed"):
        lines.append(f"{key}: {len(diff[key])}")
        lines += [f"  {r['id']} ({r['level']}): {r['before']} -> {r['after']}"
                  + (f": {r['reason'][:200]}" if r["after"] != "pass" and r["reason"] else "") for r in diff[key]]
    for key in ("added", "removed"):
        if diff[key]:
            lines.append(f"{key} clauses: {', '.join(diff[key])}")
    return "\n".join(lines)
