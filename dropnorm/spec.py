"""The clause index (spec/clauses.toml) and per-implementation deviation files.

  python -m dropnorm.spec --markdown    render spec/CLAUSES.md from the index
"""
from __future__ import annotations

import argparse
import functools
import pathlib
import sys
import tomllib
from dataclasses import dataclass

from dropnorm.dtypes import DTYPES

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "spec"
LEVELS = ("MUST", "SHOULD")
LAYERS = ("dropout", "dropout2d", "batchnorm")


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
    conventions: tuple[str, ...] = ()   # fields of spec/conventions.toml the clause depends on
    conditions: tuple[str, ...] = ()    # the named checks (conditions) of the clause that the tests use


@dataclass(frozen=True)
class Deviation:
    """An accepted departure from one check: a clause and a named condition within it.

    condition "*" matches every condition of the clause; dtypes, when given, restrict the
    deviation to examples whose inputs have one of these dtypes (a framework that computes
    float64 in float32 deviates in float64 only: its float32 results are still checked).
    """

    clause: str
    condition: str
    reason: str
    evidence: str
    dtypes: tuple[str, ...] = ()


class SpecError(ValueError):
    pass


@functools.lru_cache(maxsize=1)
def clauses() -> dict[str, Clause]:
    data = tomllib.loads((SPEC_DIR / "clauses.toml").read_text(encoding="utf-8"))
    out: dict[str, Clause] = {}
    for raw in data["clause"]:
        c = Clause(**dict(raw, conventions=tuple(raw.get("conventions", ())),
                           conditions=tuple(raw.get("conditions", ()))))
        if c.id in out:
            raise SpecError(f"duplicate clause id {c.id}")
        if c.level not in LEVELS or c.layer not in LAYERS:
            raise SpecError(f"{c.id}: level must be one of {LEVELS} and layer one of {LAYERS}")
        out[c.id] = c
    return out


def spec_version() -> str:
    return tomllib.loads((SPEC_DIR / "clauses.toml").read_text(encoding="utf-8"))["spec_version"]


def load_deviations(path: str | pathlib.Path) -> dict[tuple[str, str], Deviation]:
    """Read a deviations file: [[deviation]] tables with clause, condition, reason, evidence."""
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"deviations file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"deviations file {path} is not valid TOML: {e}") from None
    known = clauses()
    out = {}
    for i, raw in enumerate(data.get("deviation", [])):
        missing = {"clause", "condition", "reason", "evidence"} - raw.keys()
        if missing:
            raise SpecError(f"{path}: deviation #{i + 1} lacks {sorted(missing)}")
        if raw["clause"] not in known:
            raise SpecError(f"{path}: deviation #{i + 1} names unknown clause {raw['clause']!r}")
        dtypes = tuple(raw.get("dtypes", ()))
        bad = [d for d in dtypes if d not in DTYPES]
        if bad:
            raise SpecError(f"{path}: deviation #{i + 1} names unknown dtypes {bad}; known: {list(DTYPES)}")
        if raw["condition"] == "*" and not dtypes:
            raise SpecError(f"{path}: deviation #{i + 1}: condition '*' (every check of {raw['clause']}) needs "
                            "dtypes, so that it cannot hide the clause's other failures")
        d = Deviation(raw["clause"], raw["condition"], raw["reason"], raw["evidence"], dtypes)
        out[(d.clause, d.condition)] = d
    return out


def default_deviations_file(impl_name: str) -> pathlib.Path | None:
    """spec/deviations/<impl>.toml for the built-in implementations."""
    path = SPEC_DIR / "deviations" / f"{impl_name}.toml"
    return path if path.exists() else None


def markdown() -> str:
    lines = ["# dropnorm clauses", "",
             f"Specification version {spec_version()}. Rendered from spec/clauses.toml by "
             "`python -m dropnorm.spec --markdown`; edit the TOML, not this file.", ""]
    for layer in LAYERS:
        lines += [f"## {layer}", "", "| id | level | title |", "|---|---|---|"]
        lines += [f"| {c.id} | {c.level} | {c.title}{' (convention)' if c.conventions else ''} |"
                  for c in clauses().values() if c.layer == layer]
        lines.append("")
    for c in clauses().values():
        lines += [f"### {c.id}: {c.title}", "", f"**{c.level}.** {c.statement}", "",
                  f"- Formula: `{c.formula}`", f"- Source: {c.source}", f"- Why: {c.rationale}"]
        if c.conventions:
            lines.append("- Depends on the convention: " + ", ".join(f"`{k}`" for k in c.conventions)
                         + " (spec/conventions.toml; the tests use the implementation's own)")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dropnorm.spec")
    parser.add_argument("--markdown", action="store_true", help="write spec/CLAUSES.md")
    args = parser.parse_args(argv)
    if args.markdown:
        (SPEC_DIR / "CLAUSES.md").write_text(markdown(), encoding="utf-8")
        print(f"wrote {SPEC_DIR / 'CLAUSES.md'}")
        return 0
    for c in clauses().values():
        print(f"{c.id:16} {c.level:6} {c.title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
