"""The package's layout holds (issue 26): the process boundary as layers with no cycle and no upward import,
one exception root, one scoped run state, one owner of the results directory's files."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import pathlib
import pkgutil

import pytest

import dropnorm
from dropnorm import errors
from dropnorm.results_dir import RECORDS_NAME, ResultsFiles
from dropnorm.suite import state

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Lowest first: a package may import only packages of lower layers (and its own modules). `dropnorm` itself is
# the package face (__version__).
LAYERS = [
    {"dropnorm", "dropnorm.errors", "dropnorm.results_dir", "dropnorm.reference"},
    {"dropnorm.spec"},
    {"dropnorm.adapters"},
    {"dropnorm.suite"},
    {"dropnorm.report", "dropnorm.properties"},
    {"dropnorm.models"},   # the model audit's checks, report and targets (issue 27)
    {"dropnorm.zoo"},
    {"dropnorm.run"},
    {"dropnorm.__main__"},
]


def _graph() -> dict[str, set[str]]:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "benchmarks" / "import_graph.py")
    graph_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(graph_mod)
    mods = graph_mod.modules(ROOT)
    graph = {m: graph_mod.imports(m, p, set(mods)) for m, p in mods.items()}
    packages: dict[str, set[str]] = {}
    for m, deps in graph.items():
        packages.setdefault(graph_mod.group(m), set()).update(graph_mod.group(d) for d in deps)
    return {m: deps - {m} for m, deps in packages.items()}, graph_mod.sccs(graph)


def test_packages_import_only_lower_layers_and_no_module_cycle():
    packages, components = _graph()
    layer_of = {p: i for i, layer in enumerate(LAYERS) for p in layer}
    unplaced = sorted(set(packages) - set(layer_of))
    assert not unplaced, f"got packages with no layer {unplaced}, expected each placed in LAYERS [tests/test_layout.py]"
    upward = sorted(f"{p} -> {d}" for p, deps in packages.items() for d in deps if layer_of[d] >= layer_of[p]
                    and not (p == d))
    assert not upward, f"got imports to the same or a higher layer {upward}, expected none [package import graph]"
    cycles = [c for c in components if len(c) > 1]
    assert not cycles, f"got module import cycles {cycles}, expected none"


def _dropnorm_modules():
    skip = ("dropnorm.zoo.defects", "dropnorm.zoo.variants", "dropnorm.properties.test_", "dropnorm.__main__",
            "dropnorm.spec.__main__")
    for info in pkgutil.walk_packages(dropnorm.__path__, "dropnorm."):
        if info.name.startswith(skip):
            continue
        try:
            yield importlib.import_module(info.name)
        except (ImportError, errors.NotProvided):  # an adapter whose framework is not installed here
            continue


def test_every_exception_the_suite_defines_derives_from_the_one_root():
    """Catching DropnormError catches everything the suite raises on purpose, and nothing an implementation raises."""
    strays = sorted({f"{cls.__module__}.{cls.__qualname__}" for module in _dropnorm_modules()
                     for _name, cls in inspect.getmembers(module, inspect.isclass)
                     if issubclass(cls, BaseException) and cls.__module__.startswith("dropnorm")
                     and not issubclass(cls, errors.DropnormError)})
    assert not strays, f"got exception classes outside the root {strays}, expected all to derive from DropnormError"


def test_user_errors_are_reported_in_one_line(tmp_path, capsys):
    from dropnorm.run import cli
    assert cli.main(["audit", "--impl", "no-such-implementation", "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown implementation" in err[0], err


def test_run_state_is_scoped_to_one_run():
    outer = state.current()
    inner = state.begin()
    try:
        assert state.current() is inner and inner is not outer
        inner.focus = "Dropout2d"
        nested = state.begin()
        assert nested.focus is None, "a nested run must not see the outer run's focus"
        state.end()
        assert state.current().focus == "Dropout2d"
    finally:
        state.end()
    assert state.current() is outer


def test_the_base_state_is_never_closed(monkeypatch):
    base = state.RunState()
    monkeypatch.setattr(state, "_RUNS", [base])
    state.end()
    assert state.current() is base


def test_results_files_round_trip(tmp_path):
    files = ResultsFiles.in_directory(tmp_path)
    assert files.records.name == RECORDS_NAME
    assert files.read_collected() is None and files.read_timeouts() == {} and files.running_markers() == []
    files.write_collected({"t::a": ["DO-P0-01"]})
    assert files.read_collected() == {"t::a": ["DO-P0-01"]}
    marker = files.mark_running("t::a")
    info = files.read_marker(marker)
    assert info["nodeid"] == "t::a" and files.running_markers() == [marker]
    files.write_timeouts({"t::a": 60.0})
    assert files.read_timeouts() == {"t::a": 60.0}
    writer = files.open_records()
    writer.write({"event": "start"})
    writer.write({"event": "test", "nodeid": "t::a"})
    writer.close()
    assert [e["event"] for e in files.events()] == ["start", "test"]
    files.clear()
    assert not any(p.exists() for p in (files.records, files.collected, files.timeouts, marker))


def test_events_since_waits_for_a_line_being_written(tmp_path):
    """The audit follows the records file while pytest appends to it: a line cut in the middle waits."""
    files = ResultsFiles.in_directory(tmp_path)
    first = json.dumps({"event": "test", "nodeid": "a", "note": "é"}) + "\n"
    files.records.write_text(first + '{"event": "te', encoding="utf-8")
    events, offset = files.events_since(0)
    assert [e["nodeid"] for e in events] == ["a"] and offset == len(first.encode("utf-8"))
    with open(files.records, "a", encoding="utf-8") as f:
        f.write('st", "nodeid": "b"}\n')
    events, offset2 = files.events_since(offset)
    assert [e["nodeid"] for e in events] == ["b"] and offset2 == files.records.stat().st_size
    assert [e["nodeid"] for e in files.events()] == ["a", "b"]


@pytest.mark.parametrize("cut", ['{"event": "finish"', '{"event": "fin'])
def test_records_cut_by_a_kill_keep_everything_before(tmp_path, cut):
    files = ResultsFiles.in_directory(tmp_path)
    files.records.write_text(json.dumps({"event": "start"}) + "\n" + cut, encoding="utf-8")
    assert [e["event"] for e in files.events()] == ["start"]
