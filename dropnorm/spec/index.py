"""The clause index (spec/clauses.toml) and per-implementation deviation files.

  python -m dropnorm.spec --markdown    render spec/CLAUSES.md from the index
"""
from __future__ import annotations

import functools
import pathlib
import tomllib
from dataclasses import dataclass

from dropnorm.errors import SpecError  # noqa: F401 - raised here; `from dropnorm.spec import SpecError`
from dropnorm.spec.dtypes import DTYPES
from dropnorm.spec.kinds import KINDS, LAYER_KINDS, LAYERS

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the checkout (dropnorm/spec/index.py)
# spec/ in a source checkout; the same files shipped in the package (pyproject: dropnorm.spec_data) otherwise
SPEC_DIR = ROOT / "spec" if (ROOT / "spec" / "clauses.toml").is_file() else pathlib.Path(__file__).resolve().parents[1] / "spec_data"
LEVELS = ("MUST", "SHOULD")
# where a clause's requirement comes from (spec/clauses.toml, header): a recommendation is never a MUST
BASES = ("documented", "math", "recommendation")
# How bad a failure is, from what its check observed; most dangerous first. Every report orders by it.
SEVERITIES = {
    "wrong-value": "a wrong value returned silently",
    "wrong-state": "a wrong shape, dtype or state (buffers, counter, mode, memory aliasing)",
    "exception": "an exception or hang where a value was due",
    "invalid-accepted": "an invalid argument or input accepted, or rejected with the wrong error",
}


@dataclass(frozen=True)
class Clause:
    id: str
    layer: str
    level: str
    title: str
    statement: str
    formula: str
    source: str
    rationale: str
    basis: str = "documented"           # one of BASES: where the requirement comes from
    conformance_class: str = ""         # the id of its ConformanceClass ("class" in the TOML)
    level_reason: str = ""              # why the level is what it is (where not obvious, or changed)
    conventions: tuple[str, ...] = ()   # fields of spec/conventions.toml the clause depends on
    conditions: tuple[str, ...] = ()    # the named checks (conditions) of the clause that the tests use
    # condition -> the layer kinds it applies to ([clause.applies] in the TOML); a condition not named
    # applies to every kind of the clause's layer (kinds.LAYER_KINDS). A clause reads pass on a kind only
    # where each condition that applies there ran there (dropnorm/report/model.py, issue 22).
    applies: tuple = ()                 # ((condition, (kind, ...)), ...)

    def applicable(self, kind: str) -> tuple[str, ...]:
        """The conditions of this clause that apply to layer kind `kind`."""
        limited = dict(self.applies)
        return tuple(c for c in self.conditions if c not in limited or kind in limited[c])


@dataclass(frozen=True)
class ConformanceClass:
    """A group of clauses a user recognises (values, randomness, gradients, ...), judged on its own."""
    id: str
    title: str
    description: str


DEVIATION_KINDS = ("convention", "known-defect")


@dataclass(frozen=True)
class Deviation:
    """A recorded departure from one check: a clause and a named condition within it.

    kind: "convention" (a documented choice or design of the implementation, accepted; also a departure
    from a recommendation of this specification, which is never a defect of the implementation) or
    "known-defect" (a bug, with its finding in docs/findings/; it keeps the clause from pass and
    the implementation from conformant, but is not an unrecorded failure).
    The scope narrows which failures it covers; every field left empty means "any":
      layers     layer kinds (Dropout, Dropout2d, BatchNorm1d, ...) of the failing check
      dtypes     input dtypes of the failing check (not of everything the example ran)
      layouts    input layouts of the failing check
      params     constructor arguments, name -> [lo, hi] or a list of allowed values
      seeds      the seeds given to impl.seed() in the failing example
      max_error  the largest |observed - expected| accepted (checks with a tolerance only)
    condition "*" (every check of the clause) needs dtypes, so that it cannot hide the
    clause's other failures.
    """

    clause: str
    condition: str
    reason: str
    evidence: str
    kind: str = "convention"
    dtypes: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    layouts: tuple[str, ...] = ()
    params: tuple = ()             # ((name, (lo, hi) | tuple of values), ...)
    seeds: tuple[int, ...] = ()
    max_error: float | None = None
    finding: str = ""              # docs/findings/<file>.md for a known defect
    source: str = ""               # the file it was read from

    @property
    def key(self) -> str:
        return f"{self.clause}/{self.condition}" + "".join(
            f" {k}={list(v)}" for k, v in (("layers", self.layers), ("dtypes", self.dtypes),
                                           ("layouts", self.layouts), ("seeds", self.seeds)) if v)

    def covers(self, *, layer: str | None, dtype: str | None, layout: str | None, params: dict,
               seeds: set, error: float | None) -> bool:
        """Whether a failed check with these circumstances lies inside this deviation's scope."""
        if self.layers and layer not in self.layers:
            return False
        if self.dtypes and dtype not in self.dtypes:
            return False
        if self.layouts and layout not in self.layouts:
            return False
        if self.seeds and not (seeds & set(self.seeds)):
            return False
        for name, allowed in self.params:
            value = params.get(name, _MISSING)
            if value is _MISSING:
                return False
            if isinstance(allowed, tuple) and len(allowed) == 2 and all(
                    isinstance(a, (int, float)) and not isinstance(a, bool) for a in allowed) and \
                    isinstance(value, (int, float)) and not isinstance(value, bool):
                if not allowed[0] <= value <= allowed[1]:
                    return False
            elif value not in allowed:
                return False
        if self.max_error is not None and (error is None or not error <= self.max_error):
            return False
        return True


_MISSING = object()


@functools.lru_cache(maxsize=1)
def _index() -> dict:
    return tomllib.loads((SPEC_DIR / "clauses.toml").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def classes() -> dict[str, ConformanceClass]:
    """The conformance classes, in report order."""
    return {raw["id"]: ConformanceClass(**raw) for raw in _index().get("class", [])}


@functools.lru_cache(maxsize=1)
def clauses() -> dict[str, Clause]:
    out: dict[str, Clause] = {}
    for raw in _index()["clause"]:
        raw = dict(raw)
        applies = _applies(raw.get("id", "?"), raw.get("layer"), raw.pop("applies", {}), raw.get("conditions", ()))
        c = Clause(**dict(raw, conformance_class=raw.pop("class", ""), conventions=tuple(raw.get("conventions", ())),
                          conditions=tuple(raw.get("conditions", ())), applies=applies))
        if c.id in out:
            raise SpecError(f"duplicate clause id {c.id}")
        if c.level not in LEVELS or c.layer not in LAYERS:
            raise SpecError(f"{c.id}: level must be one of {LEVELS} and layer one of {LAYERS}")
        if c.basis not in BASES:
            raise SpecError(f"{c.id}: basis must be one of {BASES}, got {c.basis!r}")
        if c.basis == "recommendation" and c.level == "MUST":
            raise SpecError(f"{c.id}: a recommendation of this specification is never a MUST")
        if c.conformance_class not in classes():
            raise SpecError(f"{c.id}: class {c.conformance_class!r} is not one of {list(classes())}")
        out[c.id] = c
    return out


def _applies(cid: str, layer: str | None, table, conditions) -> tuple:
    """A clause's [clause.applies] table (condition -> list of layer kinds), validated: each condition is one
    the clause lists, each kind one of its layer's kinds, no list empty."""
    if not isinstance(table, dict):
        raise SpecError(f"{cid}: applies must be a table condition -> [layer kinds], got {table!r}")
    kinds = LAYER_KINDS.get(layer, ())
    out = []
    for condition, listed in table.items():
        if condition not in conditions:
            raise SpecError(f"{cid}: applies names condition {condition!r}, which the clause does not list "
                            f"(its conditions: {', '.join(conditions)})")
        if not isinstance(listed, list) or not listed or not all(isinstance(k, str) for k in listed):
            raise SpecError(f"{cid}: applies.{condition} must be a non-empty list of layer kinds, got {listed!r}")
        bad = [k for k in listed if k not in kinds]
        if bad:
            raise SpecError(f"{cid}: applies.{condition} names {bad}, not layer kinds of {layer} "
                            f"(those are {list(kinds)})")
        out.append((condition, tuple(k for k in kinds if k in listed)))
    return tuple(out)


def spec_version() -> str:
    return _index()["spec_version"]


def load_deviations(path: str | pathlib.Path, _including: tuple = ()) -> list[Deviation]:
    """Read a deviations file: [[deviation]] tables (see Deviation), validated against the clause
    index: the clause must exist and, where the clause lists its conditions, the condition too.
    `include = ["other.toml"]` (paths relative to the file) first reads the deviations of files that
    record the same code (torch-compile-fullgraph runs torch-compile's modules and compiler); each keeps
    its own file as its source."""
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"deviations file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"deviations file {path} is not valid TOML: {e}") from None
    unknown_top = set(data) - {"deviation", "include"}
    if unknown_top:
        raise SpecError(f"deviations file {path} has unknown top-level keys {sorted(unknown_top)}; known: "
                        "deviation, include")
    out = []
    for name in data.get("include", []):
        included = (path.parent / name).resolve()
        if included in _including or included == path.resolve():
            raise SpecError(f"deviations file {path} includes {name}, which includes it back")
        out += load_deviations(included, _including + (path.resolve(),))
    known = clauses()
    allowed_keys = {"clause", "condition", "reason", "evidence", "kind", "dtypes", "layers", "layouts", "params",
                    "seeds", "max_error", "finding"}
    for i, raw in enumerate(data.get("deviation", [])):
        where = f"{path}: deviation #{i + 1}"
        missing = {"clause", "condition", "reason", "evidence", "kind"} - raw.keys()
        if missing:
            raise SpecError(f"{where} lacks {sorted(missing)} (kind is one of {list(DEVIATION_KINDS)})")
        unknown_keys = set(raw) - allowed_keys
        if unknown_keys:
            raise SpecError(f"{where} has unknown keys {sorted(unknown_keys)}; known: {sorted(allowed_keys)}")
        if raw["kind"] not in DEVIATION_KINDS:
            raise SpecError(f"{where}: kind must be one of {list(DEVIATION_KINDS)}, got {raw['kind']!r}")
        clause = known.get(raw["clause"])
        if clause is None:
            raise SpecError(f"{where} names unknown clause {raw['clause']!r}")
        if raw["condition"] != "*" and clause.conditions and raw["condition"] not in clause.conditions:
            raise SpecError(f"{where}: {raw['clause']} has no condition {raw['condition']!r}; its conditions: "
                            f"{', '.join(clause.conditions)}")
        dtypes = tuple(raw.get("dtypes", ()))
        bad = [d for d in dtypes if d not in DTYPES]
        if bad:
            raise SpecError(f"{where} names unknown dtypes {bad}; known: {list(DTYPES)}")
        layers = tuple(raw.get("layers", ()))
        bad = [k for k in layers if k not in KINDS]
        if bad:
            raise SpecError(f"{where} names unknown layers {bad}; known: {list(KINDS)}")
        if raw["condition"] == "*" and not dtypes:
            raise SpecError(f"{where}: condition '*' (every check of {raw['clause']}) needs "
                            "dtypes, so that it cannot hide the clause's other failures")
        if raw["kind"] == "known-defect" and not raw.get("finding"):
            raise SpecError(f"{where}: a known defect names its write-up (finding = \"docs/findings/....md\")")
        params = tuple((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in raw.get("params", {}).items())
        out.append(Deviation(raw["clause"], raw["condition"], raw["reason"], raw["evidence"], raw["kind"], dtypes,
                             layers, tuple(raw.get("layouts", ())), params, tuple(raw.get("seeds", ())),
                             raw.get("max_error"), raw.get("finding", ""), str(path)))
    return out


def default_deviations_file(impl_name: str) -> pathlib.Path | None:
    """spec/deviations/<impl>.toml for the built-in implementations."""
    path = SPEC_DIR / "deviations" / f"{impl_name}.toml"
    return path if path.exists() else None


def changes() -> list[dict]:
    """What changed for a user of the previous versions ([[change]] in spec/clauses.toml)."""
    return list(_index().get("change", []))

