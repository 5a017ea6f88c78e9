"""Which recorded deviations judge a run: an implementation's own record, torch's record scoped to a
user's torch.nn classes, and the user's --deviations (read by the plugin and by the audit's report)."""
from __future__ import annotations

import dataclasses
import pathlib

from dropnorm.spec.index import SPEC_DIR, Deviation, clauses, default_deviations_file, load_deviations
from dropnorm.spec.kinds import KIND_LAYER


@dataclasses.dataclass(frozen=True)
class ScopedDeviation(Deviation):
    """A recorded deviation applied to some of a target's layer kinds only, on top of its own scope:
    `only` (when not None) the kinds it may cover, `excluded` the kinds it never covers. Its key is the
    entry's own (the scope is not part of it), so that its hits count for the entry as its file wrote it."""

    only: tuple | None = None
    excluded: tuple = ()

    def covers(self, *, layer: str | None, **circumstances) -> bool:
        if layer in self.excluded or (self.only is not None and layer not in self.only):
            return False
        return super().covers(layer=layer, **circumstances)


def _scoped(dev: Deviation, *, only: tuple | None = None, excluded: tuple = ()) -> ScopedDeviation:
    values = {f.name: getattr(dev, f.name) for f in dataclasses.fields(dev) if f.init}
    return ScopedDeviation(**values, only=only, excluded=excluded)


def builtin_record(dev: Deviation) -> bool:
    """Whether a deviation was read from one of dropnorm's own records of a framework (spec/deviations/*.toml)."""
    return bool(dev.source) and pathlib.Path(dev.source).resolve().parent == (SPEC_DIR / "deviations").resolve()


def recorded_deviations(impl_name: str, torch_own_kinds=(), extra=()) -> list[Deviation]:
    """The recorded deviations a run of `impl_name` is judged under: its own file (spec/deviations/<name>.toml,
    for the built-in implementations) and `extra` (--deviations).

    A torch-module target (a user's file) is judged class by class. Its classes that are torch.nn's own
    (TorchImplementation.torch_own_kinds: `from torch.nn import Dropout`, `Dropout = nn.Dropout`) are judged as
    torch: torch's recorded departures (spec/deviations/torch.toml) cover them and only them, for the entries of
    clauses of their layers. The user's --deviations cover only the user's own classes; a framework's record
    given as --deviations (spec/deviations/torch.toml) never covers them, so that a user's bug is never
    labelled a known defect of torch. dropnorm.run.audit can read the same list for the report's deviations."""
    path = default_deviations_file(impl_name)
    own = load_deviations(path) if path else []
    if not impl_name.startswith("torch-module:"):
        return own + list(extra)
    torch_own = tuple(torch_own_kinds or ())
    users = [_scoped(d, excluded=torch_own) if torch_own else d for d in extra if not builtin_record(d)]
    if not torch_own:
        return own + users
    layers = {KIND_LAYER[k] for k in torch_own}
    known = clauses()
    torch_file = default_deviations_file("torch")
    torch_entries = [_scoped(d, only=torch_own) for d in (load_deviations(torch_file) if torch_file else [])
                     if d.clause in known and known[d.clause].layer in layers
                     and (not d.layers or set(d.layers) & set(torch_own))]
    return own + torch_entries + users
