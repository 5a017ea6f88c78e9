"""The dropnorm pytest plugin: the implementation under test, hypothesis profiles, clause bookkeeping.

Registered as a pytest11 entry point (pyproject.toml), so that the property suite runs from any
directory once dropnorm is installed, e.g. in a framework's own CI:

    pytest --pyargs dropnorm.properties --impl torch-module:mypkg.layers

It stays inert in other projects' test runs: it loads dropnorm's hypothesis profile and
parametrizes tests only when it is active (--impl or DROPNORM_IMPL given, the run collects
dropnorm's own tests, or the run is in dropnorm's checkout).

  --impl SPEC          torch, reference or torch-module:TARGET (repeatable;
                       env DROPNORM_IMPL, comma-separated). Default: torch,
                       reference and the suite's own from-scratch layers.
  --deviations FILE    extra accepted deviations (TOML, as spec/deviations/torch.toml)
  --device cpu|cuda    where torch implementations run
  --clause ID          run only the tests citing clause ID (repeatable)
  --layer LAYER        run only the tests of dropout, dropout2d or batchnorm clauses (repeatable)
  --dropnorm-results F one JSON line per test outcome (dropnorm/suite/recorder.py; used by dropnorm audit)
  --hypothesis-profile quick | ci (default) | thorough
  --hypothesis-seed N  takes effect even though ci is derandomized
"""
from __future__ import annotations

import os
import pathlib

import pytest
from hypothesis import settings

from dropnorm.suite import checks, isolation, judging, profiles, recorder, state
from dropnorm.adapters import IMPL_HELP, ImplSpecError, NotProvided, bare_path_error, load, normalize
from dropnorm.spec.deviations import recorded_deviations
from dropnorm.spec.kinds import LAYER_KINDS
from dropnorm.spec import LAYERS, SpecError, clauses, load_deviations
from dropnorm.suite.traced import current_trace, Traced

pytest_plugins = ["dropnorm.suite.recorder"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRATCH_IMPL = "torch-module:dropnorm.zoo.scratch"
DEFAULT_IMPLS = ("torch", "reference", SCRATCH_IMPL)

profiles.register()


def active(config) -> bool:
    """Whether this run is a dropnorm run (see the module docstring)."""
    if config.getoption("impl", None) or os.environ.get("DROPNORM_IMPL"):
        return True
    if any("dropnorm" in str(a) for a in config.invocation_params.args):
        return True
    return pathlib.Path(config.rootpath).resolve() == ROOT


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Before hypothesis's own plugin reads --hypothesis-profile: dropnorm's default profile. The run's
    state (suite/state.py) opens here and closes at pytest_unconfigure."""
    state.begin()
    config.dropnorm_active = active(config)
    if config.dropnorm_active:
        settings.load_profile(os.environ.get("DROPNORM_PROFILE", profiles.DEFAULT))
    configure(config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """An explicit --hypothesis-seed takes effect although quick and ci are derandomized (hypothesis ignores
    the seed under derandomize): the loaded profile is switched to a non-derandomized copy. This runs at
    session start, after every plugin's pytest_configure, because hypothesis's own plugin loads
    --hypothesis-profile in its pytest_configure. Until Dec 7 it ran in a plugin registered during
    pytest_configure, which pytest calls at once (a historic hook), before hypothesis's: the audit passes
    --hypothesis-profile, so `dropnorm audit --seed S` ran the same examples for every S in quick and ci
    (tests/test_harness.py::test_same_seed_reproduces_the_same_results_and_another_seed_draws_others)."""
    config = session.config
    seed = config.getoption("hypothesis_seed", None)
    if seed is not None and config.dropnorm_active and settings.default.derandomize:
        settings.register_profile("dropnorm-seeded", parent=settings.default, derandomize=False, database=None)
        settings.load_profile("dropnorm-seeded")


def pytest_unconfigure(config):
    state.end()


def pytest_addoption(parser):
    group = parser.getgroup("dropnorm")
    group.addoption("--impl", action="append", default=None, help=f"implementation under test: {IMPL_HELP}")
    group.addoption("--deviations", action="append", default=[], help="TOML file of accepted deviations")
    group.addoption("--device", default="cpu", choices=("cpu", "cuda"), help="device for torch implementations")
    group.addoption("--clause", action="append", default=[], metavar="ID",
                    help="run only the tests citing this clause (repeatable)")
    group.addoption("--layer", action="append", default=[], choices=LAYERS,
                    help="run only the tests of this layer's clauses (repeatable)")


def configure(config):
    config.addinivalue_line("markers", "clause(*ids): the spec clauses a test checks")
    config.addinivalue_line("markers", "statistical(checks): a test making `checks` exact tests per example "
                                       "(counted against the budget of dropnorm/spec/stats.py)")
    specs = config.getoption("impl") or [s for s in os.environ.get("DROPNORM_IMPL", "").split(",") if s]
    wrong = [bare_path_error(s) for s in specs if bare_path_error(s)]
    if wrong:
        raise pytest.UsageError(wrong[0])
    try:
        config.dropnorm_impls = [normalize(s) for s in specs] if specs else list(DEFAULT_IMPLS)
        extra = []
        for path in config.getoption("deviations"):
            extra += load_deviations(path)
    except (ImplSpecError, SpecError) as e:
        raise pytest.UsageError(str(e)) from None
    config.dropnorm_extra_deviations = extra
    unknown = [c for c in config.getoption("clause") if c not in clauses()]
    if unknown:
        raise pytest.UsageError(f"--clause: unknown clause {', '.join(unknown)}; `dropnorm clauses` lists them")
    if config.getoption("device") == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda: torch reports no CUDA device on this machine; use --device cpu")


def pytest_report_header(config):
    return [f"dropnorm: impl={', '.join(config.dropnorm_impls)}; hypothesis profile={settings._current_profile}; "
            f"device={config.getoption('device')}"]


def pytest_generate_tests(metafunc):
    if "impl" in metafunc.fixturenames:
        impls = metafunc.config.dropnorm_impls
        ids = [s if not s.startswith("torch-module:") else "torch-module:" + pathlib.Path(s[13:]).name for s in impls]
        metafunc.parametrize("impl", impls, ids=ids, indirect=True, scope="session")


_loaded: dict = {}


@pytest.fixture(scope="session")
def impl(request):
    spec = request.param
    key = (spec, request.config.getoption("device"))
    if key not in _loaded:
        try:
            _loaded[key] = load(spec, device=key[1])
        except Exception as e:  # an implementation that cannot be loaded fails every test that needs it
            _loaded[key] = e
    if isinstance(_loaded[key], NotProvided):  # an optional framework that is not installed
        pytest.skip(f"not provided: {_loaded[key]}")
    if isinstance(_loaded[key], Exception):
        e = _loaded[key]
        pytest.fail(f"cannot load implementation {spec!r}: {type(e).__name__}: {e}", pytrace=False)
    return Traced(_loaded[key], spec)


def _item_clauses(item) -> list[str]:
    return [cid for m in item.iter_markers("clause") for cid in m.args]


def pytest_collection_modifyitems(config, items):
    known = clauses()
    unknown = sorted({(item.nodeid, cid) for item in items for cid in _item_clauses(item) if cid not in known})
    if unknown:
        raise pytest.UsageError("tests cite unknown clauses: " + "; ".join(f"{n} -> {c}" for n, c in unknown))
    wanted = selected_clauses(config)
    if wanted is not None:
        keep = [item for item in items if wanted & set(_item_clauses(item))]
        drop = [item for item in items if item not in keep]
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep


def selected_clauses(config) -> set[str] | None:
    """The clauses chosen with --clause and --layer (their union), or None for all."""
    ids, layers = config.getoption("clause"), config.getoption("layer")
    if not ids and not layers:
        return None
    return set(ids) | {cid for cid, c in clauses().items() if c.layer in layers}


@pytest.fixture(autouse=True)
def _isolated_global_state(request):
    """Restore global state (torch default dtype, grad mode, threads, numpy's RNG, warnings filters, ...)
    after each test of an implementation, and report a change as an error of that test."""
    if "impl" not in request.fixturenames:
        yield
        return
    snapshot = isolation.Snapshot.take()
    yield
    isolation.check_restored(snapshot)


@pytest.fixture(autouse=True)
def _clause_context(request):
    """Per test: the deviations that apply, the clause check context, and not-provided layers."""
    ids = _item_clauses(request.node)
    ctx = checks.Context()
    if "impl" in request.fixturenames and ids:
        impl = request.getfixturevalue("impl")
        ctx.impl_name = impl.name
        ctx.deviations = recorded_deviations(impl.name, getattr(impl, "torch_own_kinds", ()),
                                             request.config.dropnorm_extra_deviations)
        ctx.marked = frozenset(ids)
        needed = {cls for cid in ids for cls in LAYER_KINDS[clauses()[cid].layer]}
        if not any(impl.provides(cls) for cls in needed):
            pytest.skip(f"not provided: {impl.describe()} defines none of {sorted(needed)}")
    current_trace().reset_test(request.node.callspec.params.get("impl") if hasattr(request.node, "callspec") else None)
    checks.set_context(ctx)
    request.node.dropnorm_context = ctx
    for cid in ids:
        request.node.user_properties.append(("clause", cid))
    yield
    checks.set_context(checks.Context())


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run a clause-marked test through dropnorm.suite.judging: after a failure it is run again with the
    failed conditions masked, so that every clause the test checks is judged."""
    __tracebackhide__ = True
    ctx = getattr(pyfuncitem, "dropnorm_context", None)
    if ctx is None or not ctx.marked:
        return None
    funcargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    judging.run(lambda: pyfuncitem.obj(**funcargs), ctx)
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    _settle_outcome(item, call, rep)
    recorder.attach_record(item, call, rep)


def _settle_outcome(item, call, rep) -> None:
    """A test that needed what the implementation does not provide is skipped; one that met only recorded
    deviations is an xfail ("known deviation" / "known defect")."""
    if call.excinfo is not None and call.excinfo.errisinstance(NotProvided):
        rep.outcome, rep.longrepr = "skipped", (str(item.path), 0, f"not provided: {call.excinfo.value}")
        return
    ctx = getattr(item, "dropnorm_context", None)
    if rep.when == "call" and rep.passed and ctx is not None and ctx.observed:
        # a recorded deviation was met (and nothing else failed): xfail, "known deviation" or "known defect"
        rep.outcome = "skipped"
        known = any(dev.kind == "known-defect" for dev, *_rest in ctx.observed.values())
        met = {(c, cond): (dev, msg) for (c, cond, _k, _layer), (dev, msg, *_rest) in ctx.observed.items()}
        rep.wasxfail = ("known defect: " if known else "known deviation: ") + "; ".join(
            f"{c}/{cond} ({dev.kind}: {dev.reason})" for (c, cond), (dev, _msg) in met.items())
        for (c, cond), (dev, msg) in met.items():
            item.user_properties.append(("deviation", f"{c}/{cond} [{dev.kind}]: {msg.splitlines()[0]}"))
