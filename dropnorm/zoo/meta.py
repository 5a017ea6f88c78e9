"""The suite checks itself: audit the defect catalogue and the correct variants in bulk.

  catalogue()          every defect (dropnorm/zoo/defects/) and variant (dropnorm/zoo/variants/)
                       as an Entry: its --impl spec and the clauses it is audited on
  group_of(entry)      the clause family it runs with (dropout, batchnorm); one pytest process per group
  run_groups(...)      one `pytest <property tests> --impl ... --impl ...` per group, several at a time,
                       each implementation restricted to the tests citing its clauses
                       (dropnorm.zoo.selection), the derandomized ci profile
  parse_results(path)  what each implementation failed, on which clauses and conditions, and what it
                       passed: read from the same structured results (JSON lines) as `dropnorm audit`

A defect names the one clause it violates (its DEFECT dict) and is audited on that
clause; a variant names the layers it reimplements (its VARIANT dict) and is audited
on every clause of those layers. tests/test_zoo.py turns the audits into one test
item per defect and per variant.
"""
from __future__ import annotations

import concurrent.futures
import importlib
import json
import os
import pathlib
import pkgutil
import subprocess
import sys
from dataclasses import dataclass, field

from dropnorm.properties import module_files as property_test_files
from dropnorm.suite import profiles
from dropnorm.spec import LAYERS, ROOT, clauses

PROFILE = profiles.DEFAULT  # derandomized (ci): the audits are deterministic

# group name -> clause-id prefixes: one pytest process per clause family. A process starts in
# about 3 s (torch, scipy) and audits a family's defects in about as long, so the two families
# make two balanced processes for the default run's two cores.
GROUPS = {
    "dropout": ("DO-", "D2-", "AD-"),
    "batchnorm": ("BN-",),
}

@dataclass(frozen=True)
class Entry:
    kind: str            # "defect" or "variant"
    name: str            # module name within its package
    spec: str            # --impl spec
    clauses: frozenset   # clauses it is audited on
    meta: dict = field(compare=False, hash=False)

    def describe(self) -> str:
        return f"{self.kind} {self.name}: {self.meta.get('summary', '')}"


def _modules(package: str):
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield info.name, importlib.import_module(f"{package}.{info.name}")


def defects() -> list[Entry]:
    out = []
    for name, module in _modules("dropnorm.zoo.defects"):
        meta = module.DEFECT
        if meta["clause"] not in clauses():
            raise ValueError(f"defect {name} names unknown clause {meta['clause']!r}")
        out.append(Entry("defect", name, f"torch-module:{module.__name__}", frozenset([meta["clause"]]), meta))
    return out


def variants() -> list[Entry]:
    out = []
    for name, module in _modules("dropnorm.zoo.variants"):
        meta = module.VARIANT
        unknown = set(meta["layers"]) - set(LAYERS)
        if unknown:
            raise ValueError(f"variant {name} names unknown layers {sorted(unknown)}")
        ids = frozenset(cid for cid, c in clauses().items() if c.layer in meta["layers"])
        out.append(Entry("variant", name, f"torch-module:{module.__name__}", ids, meta))
    return out


def catalogue() -> list[Entry]:
    return defects() + variants()


def group_of(entry: Entry) -> str:
    """The family of its clauses (a variant's clauses are those of the layers it reimplements)."""
    groups = {next(g for g, prefixes in GROUPS.items() if c.startswith(prefixes)) for c in entry.clauses}
    if len(groups) != 1:
        raise ValueError(f"{entry.name} spans clause families {sorted(groups)}; split it")
    return groups.pop()


@dataclass
class Audit:
    """What the suite said about one implementation."""

    spec: str
    tests: int = 0
    failed: list = field(default_factory=list)       # names of failed tests
    violated: dict = field(default_factory=dict)     # clause -> sorted conditions
    errors: list = field(default_factory=list)       # failures that are not ClauseViolations
    passed_clauses: set = field(default_factory=set)  # clauses cited by passing tests
    fail_seconds: float = 0.0                         # time spent in the tests that failed it
    scripts: dict = field(default_factory=dict)       # clause -> the first failure's reproduction script
    not_provided_clauses: set = field(default_factory=set)  # clauses of tests skipped as not provided

    def to_json(self) -> dict:
        return {**self.__dict__, "passed_clauses": sorted(self.passed_clauses),
                "not_provided_clauses": sorted(self.not_provided_clauses)}

    @classmethod
    def from_json(cls, data: dict) -> "Audit":
        return cls(**{**data, "passed_clauses": set(data["passed_clauses"]),
                      "not_provided_clauses": set(data.get("not_provided_clauses") or ())})


def parse_results(path: pathlib.Path) -> dict[str, Audit]:
    """Per implementation: its failed tests, violated clauses with their conditions, errors and the
    clauses its passing tests cite (the structured records of dropnorm/suite/recorder.py)."""
    from dropnorm.report.model import read_records
    records, _events = read_records(path)
    audits: dict[str, Audit] = {}
    for rec in records:
        spec = rec.get("impl")
        if spec is None:
            continue
        audit = audits.setdefault(spec, Audit(spec))
        audit.tests += 1
        if rec["outcome"] == "skipped":
            if str(rec.get("skip_reason") or "").startswith("not provided"):
                audit.not_provided_clauses |= set(rec.get("clauses") or ())
            continue
        if rec["outcome"] == "passed":
            audit.passed_clauses |= set(rec.get("clauses") or ())
            continue
        name = rec["nodeid"].split("::")[-1]
        audit.failed.append(name)
        audit.fail_seconds += float(rec.get("duration") or 0.0)
        for v in rec.get("violations") or ():
            audit.violated[v["clause"]] = sorted(set(audit.violated.get(v["clause"], [])) | {v["condition"]})
            if v.get("script"):
                audit.scripts.setdefault(v["clause"], v["script"])
        if not rec.get("violations"):
            audit.errors.append(f"{name}: {(rec.get('error') or '').splitlines()[0][:300] if rec.get('error') else ''}")
    return audits


def run_script(script: str, workdir: pathlib.Path, name: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a reproduction script in isolation (`python -I`, from an empty directory)."""
    directory = workdir / f"repro-{name}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "repro.py"
    path.write_text(script, encoding="utf-8")
    return subprocess.run([sys.executable, "-I", str(path)], cwd=directory, capture_output=True, text=True,
                          timeout=timeout, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def _command(entries: list[Entry], results: pathlib.Path, extra: list[str], profile: str = PROFILE) -> list[str]:
    ids = sorted(set().union(*(e.clauses for e in entries)))
    files = property_test_files()  # as dropnorm audit
    return ([sys.executable, "-m", "pytest", *files, "-p", "dropnorm.zoo.selection",
             "-p", "no:xdist", "-p", "no:cacheprovider", f"--hypothesis-profile={profile}",
             f"--dropnorm-results={results}", "-q", "--no-header", "-rN"]
            + [f"--clause={c}" for c in ids]
            + [f"--impl={e.spec}" for e in entries] + list(extra))


def _environment(selection: pathlib.Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS", "DROPNORM_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env["DROPNORM_ZOO_SELECT"] = str(selection)
    return env


def run_group(name: str, entries: list[Entry], workdir: pathlib.Path, *, extra: list[str] = (),
              timeout: float = 900, profile: str = PROFILE) -> dict[str, Audit]:
    """One pytest process auditing `entries`, each on its own clauses."""
    selection = workdir / f"{name}.select.json"
    selection.write_text(json.dumps({e.spec: sorted(e.clauses) for e in entries}), encoding="utf-8")
    results = workdir / f"{name}.results.jsonl"
    run = subprocess.run(_command(entries, results, list(extra), profile), cwd=ROOT, env=_environment(selection),
                         capture_output=True, text=True, timeout=timeout)
    if run.returncode not in (0, 1) or not results.is_file():
        raise RuntimeError(f"zoo group {name}: pytest exited {run.returncode}\n{(run.stdout + run.stderr)[-4000:]}")
    audits = parse_results(results)
    for e in entries:
        audits.setdefault(e.spec, Audit(e.spec))
    return audits


def run_groups(entries: list[Entry], workdir: pathlib.Path, *, jobs: int | None = None,
               extra: list[str] = (), profile: str = PROFILE, timeout: float = 900) -> dict[str, Audit]:
    """Audit `entries`, one process per group, `jobs` processes at a time (default: usable CPUs);
    `extra` pytest arguments go to every process (e.g. --hypothesis-seed=N to probe other examples)."""
    by_group: dict[str, list[Entry]] = {}
    for e in entries:
        by_group.setdefault(group_of(e), []).append(e)
    order = [g for g in GROUPS if g in by_group]
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    audits: dict[str, Audit] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(jobs, len(order)))) as pool:
        for result in pool.map(lambda g: run_group(g, by_group[g], workdir, extra=extra, profile=profile,
                                                   timeout=timeout), order):
            audits.update(result)
    return audits
