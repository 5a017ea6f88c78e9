"""The model catalogue (issue 27): small models with one Dropout/BatchNorm pitfall each, every one named
with the model clause and condition that must reject it and where users meet it, and correct models
that must pass every model clause. `dropnorm audit-model dropnorm:NAME` audits one;
tests/test_model_audit.py and `dropnorm selfcheck` audit them all.

Each build() returns (model, example_input[, options]) as a TARGET callable does.
"""
from __future__ import annotations

from dataclasses import dataclass

from dropnorm.zoo.models import correct, pitfalls


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str            # "pitfall" or "correct"
    clause: str          # pitfalls: the clause that must reject it ("" for correct models)
    condition: str       # pitfalls: the condition
    source: str
    build: object
    checks: tuple = ()   # the checks its audit needs (all default checks where empty)


def catalogue() -> dict:
    out = {}
    for module, kind in ((pitfalls, "pitfall"), (correct, "correct")):
        for name, (clause, condition, source, build, checks) in module.MODELS.items():
            out[name] = Entry(name, kind, clause, condition, source, build, checks)
    return out
