"""The model clauses (MD-*): [[model_clause]] in spec/clauses.toml, judged by `dropnorm audit-model`
(dropnorm/models/), not by the layer audit. A model clause has no layer; otherwise its fields are a
layer clause's (level, basis, class, title, statement, formula, source, rationale, conditions)."""
from __future__ import annotations

import functools

from dropnorm.spec.index import BASES, LEVELS, SpecError, _index, classes

FIELDS = ("id", "level", "basis", "class", "title", "statement", "formula", "source", "rationale", "conditions",
          "level_reason", "defects_reason")


@functools.lru_cache(maxsize=None)
def _cached() -> dict:
    out = {}
    for raw in _index().get("model_clause", []):
        unknown = set(raw) - set(FIELDS)
        if unknown:
            raise SpecError(f"model clause {raw.get('id')}: unknown keys {sorted(unknown)}")
        cid = raw["id"]
        if not cid.startswith("MD-") or raw["level"] not in LEVELS or raw["basis"] not in BASES \
                or raw["class"] not in classes():
            raise SpecError(f"{cid}: a model clause needs an MD- id, a level in {LEVELS}, a basis in {BASES} and a "
                            "known class")
        if raw["basis"] == "recommendation" and raw["level"] != "SHOULD":
            raise SpecError(f"{cid}: a recommendation is never a MUST")
        if raw["level"] == "SHOULD" and not raw.get("level_reason"):
            raise SpecError(f"{cid}: a SHOULD clause says why it is not a MUST (level_reason)")
        if not raw.get("conditions"):
            raise SpecError(f"{cid}: a model clause lists its conditions")
        out[cid] = raw
    return out


class ModelClause(dict):
    __getattr__ = dict.get


def model_clauses() -> dict:
    """id -> the clause (a dict with attribute access: .level, .title, .conditions, ...)."""
    return {k: ModelClause(v) for k, v in _cached().items()}


def markdown_lines() -> list:
    """The model clauses' section of spec/CLAUSES.md."""
    cs = model_clauses()
    if not cs:
        return []
    lines = ["## model (`dropnorm audit-model`)", "",
             "Judged on a whole model by `dropnorm audit-model TARGET` (dropnorm/models/), not by the layer audit.",
             "", "| id | level | basis | class | title |", "|---|---|---|---|---|"]
    lines += [f"| {c.id} | {c.level} | {c.basis} | {c['class']} | {c.title} |" for c in cs.values()]
    lines.append("")
    for c in cs.values():
        lines += [f"### {c.id}: {c.title}", "", f"**{c.level}** ({c.basis}; class {c['class']}). {c.statement}", "",
                  f"- Formula: `{c.formula}`", f"- Source: {c.source}", f"- Why: {c.rationale}",
                  f"- Conditions: {', '.join(f'`{x}`' for x in c.conditions)}"]
        if c.level_reason:
            lines.append(f"- Level: {c.level_reason}")
        lines.append("")
    return lines
