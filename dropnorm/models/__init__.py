"""Audit a whole model (issue 27): the Dropout and BatchNorm pitfalls users hit in their own models.

  dropnorm audit-model TARGET            the command (dropnorm/run/audit_model.py)
  audit_model(model, example, ...)       the Python API: a ModelAudit with every result
  assert_model_conforms(model, example)  for a user's own pytest suite: raises AssertionError naming
                                         each failing clause, condition and module
  freeze_batchnorm(model)                a freeze recipe that survives model.train() (MD-FREEZE-01;
                                         dropnorm/models/freeze.py)

The clauses are the MD-* family of spec/clauses.toml ([[model_clause]]; dropnorm/spec/models.py).
"""
from __future__ import annotations

from dropnorm.models.freeze import freeze_batchnorm  # noqa: F401 - the public API (see above)

DEFAULT_CHECKS = ("eval", "batch", "freeze", "fold", "export", "lowp", "shift", "mc")   # compile: opt-in (slow)


def audit_model(model, example, *, freeze=None, checks=DEFAULT_CHECKS, seed=0, spec="<object>"):
    """Run the model checks on `model` with `example` (a tensor or tuple of tensors, batched along dim 0).
    freeze: the user's own freeze recipe, a callable(model) (MD-FREEZE-01). Returns a ModelAudit."""
    from dropnorm.models.checks import CHECKS, ModelAudit
    from dropnorm.models.target import TargetError, as_target
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise TargetError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
    target = as_target((model, example, {"freeze": freeze} if freeze else {}), spec)
    return ModelAudit(target, tuple(checks), seed).run()


def assert_model_conforms(model, example, **kw):
    """pytest entry: audit the model and raise AssertionError listing every MUST failure and error (clause/
    condition, the modules named, observed against expected). SHOULD warnings do not raise."""
    audit = audit_model(model, example, **kw)
    bad = [r for r in audit.results if r.status in ("fail", "error")]
    if bad:
        raise AssertionError(f"{len(bad)} model clause violation(s):\n" + "\n".join(
            f"- {r.clause}/{r.condition} [{r.status}] {r.message}" + (f" (modules: {', '.join(r.modules)})"
                                                                     if r.modules else "") for r in bad))
    return audit


