"""Pairs of catalogue defects combined in one implementation: one failure must not hide another.

`combine(a, b)` builds the five classes with the mixins of defects `a` and `b` both applied to
scratch's layers; `pairs(n)` chooses n pairs, half dropout-family and half batch-norm-family
where the catalogue allows, of defects that violate different clauses and change different
methods (so that both defects really are present). `dropnorm selfcheck` audits each pair on both
clauses and requires both to be named.
"""
from __future__ import annotations

import importlib
import itertools
import pathlib

from dropnorm.zoo import build, meta, scratch

BASES = {"Dropout": scratch.Dropout, "Dropout2d": scratch.Dropout2d, "BatchNorm1d": scratch.BatchNorm1d,
         "BatchNorm2d": scratch.BatchNorm2d, "BatchNorm3d": scratch.BatchNorm3d}


def mixins(name: str) -> dict:
    """layer kind -> the mixin defect `name` applies to scratch's class (build.layers), for the kinds it changes."""
    module = importlib.import_module(f"dropnorm.zoo.defects.{name}")
    out = {}
    for kind, base in BASES.items():
        cls = getattr(module, kind)
        if cls is base:
            continue
        if len(cls.__bases__) != 2 or cls.__bases__[1] is not base:
            return {}  # not built by build.layers: not combinable
        out[kind] = cls.__bases__[0]
    return out


def _methods(mix: dict) -> set:
    return {(kind, m) for kind, cls in mix.items() for m in vars(cls) if not m.startswith("__")}


def combine(a: str, b: str) -> tuple:
    """(Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d) carrying both defects."""
    ma, mb = mixins(a), mixins(b)
    kw = {}
    for kind, arg in (("Dropout", "dropout"), ("Dropout2d", "dropout2d"), ("BatchNorm2d", "batchnorm")):
        chain = [m[kind] for m in (ma, mb) if kind in m]
        if chain:
            kw[arg] = type("_".join(c.__name__ for c in chain), tuple(chain), {})
    return build.layers(**kw)


def pairs(n: int = 24) -> list[tuple[str, str]]:
    """n pairs of defects (a, b) with different clauses, in one clause family, changing different methods."""
    entries = {e.name: e for e in meta.defects()}
    by_family: dict[str, list] = {}
    for a, b in itertools.combinations(sorted(entries), 2):
        ea, eb = entries[a], entries[b]
        if ea.clauses == eb.clauses or meta.group_of(ea) != meta.group_of(eb):
            continue
        ma, mb = mixins(a), mixins(b)
        if not ma or not mb or _methods(ma) & _methods(mb):
            continue
        if set(ma) != set(mb) and not (set(ma) & set(mb)):  # different layers: trivially both present
            continue
        by_family.setdefault(meta.group_of(ea), []).append((a, b))
    chosen, families = [], sorted(by_family)
    # spread the choice over each family's list (deterministic), alternating families
    picks = {f: by_family[f][:: max(1, len(by_family[f]) // (n // len(families) + 1))] for f in families}
    for group in itertools.zip_longest(*(picks[f] for f in families)):
        chosen += [p for p in group if p is not None]
    return chosen[:n]


def write_module(a: str, b: str, directory: pathlib.Path) -> pathlib.Path:
    path = directory / f"pair__{a}__{b}.py"
    path.write_text("from dropnorm.zoo.pairs import combine\n\n"
                    f"Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = combine({a!r}, {b!r})\n",
                    encoding="utf-8")
    return path


def entries(chosen: list[tuple[str, str]], directory: pathlib.Path) -> list:
    """meta.Entry per pair: audited on both defects' clauses."""
    defects = {e.name: e for e in meta.defects()}
    out = []
    for a, b in chosen:
        path = write_module(a, b, directory)
        out.append(meta.Entry("pair", f"{a}+{b}", f"torch-module:{path.resolve()}",
                              defects[a].clauses | defects[b].clauses,
                              {"summary": f"{defects[a].meta['summary']} + {defects[b].meta['summary']}",
                               "pair": (a, b)}))
    return out
