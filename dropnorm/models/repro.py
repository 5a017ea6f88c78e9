"""What a model audit's repro-<clause>-<condition>.py calls: rebuild the model from its TARGET, rerun the
checks of one clause, print what the condition observed against what it expected, exit 1 while it fails."""
from __future__ import annotations

from dropnorm.models.checks import CHECK_CLAUSES, ModelAudit
from dropnorm.models.target import load_target

TRAINING = ("freeze", "compile", "lowp", "shift")   # these train on batches of at least the smallest size


def reproduce(target: str, clause: str, condition: str, seed: int = 0, checks=(), catalogue=None) -> int:
    """catalogue: dropnorm's model catalogue, for a dropnorm:NAME target (models.target.load_target)."""
    check = next(k for k, cs in CHECK_CLAUSES.items() if clause in cs)
    run = (("batch",) if check in TRAINING and "batch" in (checks or ("batch",)) else ()) + (check,)
    audit = ModelAudit(load_target(target, catalogue), run, seed).run()
    hits = [r for r in audit.results if r.clause == clause and r.condition in (condition, "*")]
    failing = [r for r in hits if r.status in ("fail", "warn")]
    for r in hits:
        print(f"{clause}/{r.condition} [{r.status}]: {r.message}")
        if r.observed is not None or r.expected is not None:
            print(f"  observed {r.observed!r}, expected {r.expected!r}"
                  + (f", tolerance {r.tolerance:.3g}" if r.tolerance is not None else ""))
        if r.modules:
            print(f"  modules: {', '.join(r.modules)}")
    print("reproduces" if failing else "does not reproduce")
    return 1 if failing else 0
