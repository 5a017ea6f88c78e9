"""`dropnorm compare A B`: what changed between two reports, clause by clause.

A regression is a clause that was pass, deviation, skip or not-provided in A and
is fail or error in B; a fix is the reverse. Other changes (pass -> deviation,
skip -> pass, ...) are listed as changed.
"""
from __future__ import annotations

from dropnorm.report.model import FAILING


def compare(a: dict, b: dict) -> dict:
    before = {e["id"]: e for e in a["clauses"]}
    after = {e["id"]: e for e in b["clauses"]}
    out = {"regressed": [], "fixed": [], "changed": [], "added": sorted(after.keys() - before.keys()),
           "removed": sorted(before.keys() - after.keys())}
    for cid in sorted(before.keys() & after.keys()):
        x, y = before[cid]["status"], after[cid]["status"]
        if x == y:
            continue
        row = {"id": cid, "level": after[cid]["level"], "before": x, "after": y, "reason": after[cid]["reason"]}
        key = "regressed" if y in FAILING and x not in FAILING else \
            "fixed" if x in FAILING and y not in FAILING else "changed"
        out[key].append(row)
    return out


def render(a: dict, b: dict, diff: dict) -> str:
    def name(r):
        i = r["implementation"]
        return f"{i['name']} {i['version']} ({r['environment']['device']}, {r['run']['finished']})"

    lines = [f"A: {name(a)}: {'conformant' if a['conformant'] else 'not conformant'}",
             f"B: {name(b)}: {'conformant' if b['conformant'] else 'not conformant'}"]
    if a["provenance"]["spec_version"] != b["provenance"]["spec_version"]:
        lines.append(f"note: spec versions differ ({a['provenance']['spec_version']} vs "
                     f"{b['provenance']['spec_version']})")
    for key in ("regressed", "fixed", "changed"):
        lines.append(f"{key}: {len(diff[key])}")
        lines += [f"  {r['id']} ({r['level']}): {r['before']} -> {r['after']}"
                  + (f": {r['reason'][:200]}" if r["after"] != "pass" and r["reason"] else "") for r in diff[key]]
    for key in ("added", "removed"):
        if diff[key]:
            lines.append(f"{key} clauses: {', '.join(diff[key])}")
    return "\n".join(lines)
