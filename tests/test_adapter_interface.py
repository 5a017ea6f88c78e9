"""The adapter interface (dropnorm/adapters/base.py) and its registry (dropnorm/adapters/__init__.py).

Adding a framework adapter touches its module, one REGISTRY line and its spec/deviations/<name>.toml: a toy
adapter, registered here by one line, loads by its --impl name and passes the interface checks
(dropnorm/adapters/interface.py); broken toys show what the checks catch; every registered adapter module has
the registry's load(name, device) and every registered implementation but the reference its deviations file.
"""
from __future__ import annotations

import ast
import importlib.util

import numpy as np
import pytest

from dropnorm import adapters
from dropnorm.adapters import ALIASES, REGISTRY, NotProvided, interface, normalize
from dropnorm.adapters import _common as c
from dropnorm.adapters.base import FlagModeLayer, Implementation, Limit, Output
from dropnorm.spec import default_deviations_file


# ------------------------------------------------------------------------------------------- a toy adapter
class ToyDropout(c.StatelessDropout, FlagModeLayer):
    """Element-wise dropout in numpy (float64 only: the toy declares the other dtypes out)."""

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        keep = self.impl.rng.random(np.shape(x)) >= self.kwargs["p"] if self._training else 1.0
        scale = 1.0 / (1.0 - self.kwargs["p"]) if self._training else 1.0
        y = np.asarray(x, np.float64) * keep * scale
        return Output(y=self.impl.result(y), dtype=dtype, x_after=np.array(x, np.float64), shares_input_memory=False)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        raise NotProvided("the toy has no gradients")


class ToyBatchNorm(FlagModeLayer):
    """BatchNorm1d's eval forward with fresh running statistics (mean 0, var 1): x / sqrt(1 + eps)."""

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        y = np.asarray(x, np.float64) / np.sqrt(1.0 + self.kwargs["eps"])
        return Output(y=self.impl.result(y), dtype=dtype, x_after=np.array(x, np.float64), shares_input_memory=False)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        raise NotProvided("the toy has no gradients")

    def state(self):
        n = self.kwargs["num_features"]
        return dict(weight=None, bias=None, running_mean=np.zeros(n), running_var=np.ones(n), num_batches_tracked=None,
                    param_dtype="float64")

    def load(self, **values):
        raise NotProvided("the toy loads nothing")

    def roundtrip(self):
        raise NotProvided("the toy saves nothing")


class ToyImplementation(Implementation):
    """What an adapter writes: its layers, its generator, and what it lacks, declared once."""

    name, version, target, convention = "toy", "0", "numpy toy layers", "torch"
    missing = {"Dropout2d": "the toy has no channel dropout", "BatchNorm2d": "the toy is 1-d",
               "BatchNorm3d": "the toy is 1-d"}
    limits = (c.no_inplace("the toy's arrays are never written in place"),
              *c.fixed_statistics("the toy BatchNorm"),
              Limit.on("affine", lambda a: a, "the toy BatchNorm has no affine parameters", kinds=("BatchNorm",)))

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def result(self, y):
        return y

    def seed(self, seed):
        self.rng = np.random.default_rng(seed)

    def rng_state(self):
        return repr(self.rng.bit_generator.state).encode()

    def dropout(self, p=0.5, inplace=False):
        self.refuse("Dropout", p=p, inplace=inplace)
        return ToyDropout(self, "Dropout", dict(p=p, inplace=inplace))

    def dropout2d(self, p=0.5, inplace=False):
        raise NotProvided(self.missing["Dropout2d"])

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=True):
        kw = c.batchnorm_keywords(self, dims, num_features, eps, momentum, affine, track_running_stats)
        return ToyBatchNorm(self, f"BatchNorm{dims}d", kw)


class LimitIgnored(ToyImplementation):
    """Declares inplace out but builds it anyway: the capability said in two places that disagree."""

    def dropout(self, p=0.5, inplace=False):
        return ToyDropout(self, "Dropout", dict(p=p, inplace=inplace))


class MissingBuilt(ToyImplementation):
    """Declares Dropout2d missing but its factory builds one."""

    def dropout2d(self, p=0.5, inplace=False):
        return ToyDropout(self, "Dropout2d", dict(p=p, inplace=inplace))


class Float32Results(ToyImplementation):
    """Returns the framework's float32 arrays instead of float64 values."""

    def result(self, y):
        return y.astype(np.float32)


TOYS = {"toy": ToyImplementation, "toy-limit-ignored": LimitIgnored, "toy-missing-built": MissingBuilt,
        "toy-float32": Float32Results}


def load(name: str, device: str = "cpu") -> Implementation:
    """This test module as the toys' adapter module: the registry's load(name, device)."""
    return TOYS[name]()


@pytest.fixture
def toy_module(monkeypatch):
    """This test module registered as the adapter of every toy: one REGISTRY line each (an absolute module
    name; the built-in adapters' are relative to dropnorm.adapters)."""
    for name in TOYS:
        monkeypatch.setitem(REGISTRY, name, (__name__, None, ("numpy",)))


def test_a_registered_toy_adapter_passes_the_interface_checks(toy_module):
    assert normalize("toy") == "toy"
    impl = adapters.load("toy")
    assert isinstance(impl, ToyImplementation)
    assert [k for k in ("Dropout", "Dropout2d", "BatchNorm1d", "BatchNorm2d") if impl.provides(k)] == ["Dropout", "BatchNorm1d"]
    assert interface.check("toy") == []


def test_a_declared_capability_is_one_answer(toy_module):
    """expresses() and the NotProvided raised are read from the same declaration."""
    impl = adapters.load("toy")
    assert not impl.expresses("Dropout", inplace=True) and impl.expresses("Dropout", inplace=False)
    with pytest.raises(NotProvided, match="never written in place"):
        impl.dropout(0.5, inplace=True)
    assert not impl.expresses("BatchNorm1d", momentum=None)
    with pytest.raises(NotProvided, match=r"the toy BatchNorm has no cumulative average \(momentum=None\)"):
        impl.batchnorm(1, 3, momentum=None)
    assert not impl.expresses("Dropout2d")
    with pytest.raises(NotProvided, match="no channel dropout"):
        impl.dropout2d()


@pytest.mark.parametrize("name,problem", [
    ("toy-limit-ignored", "declared not expressible (the toy's arrays are never written in place) but it constructs"),
    ("toy-missing-built", "Dropout2d: declared missing (the toy has no channel dropout) but its factory builds it"),
    ("toy-float32", "forward's y is not float64 values"),
])
def test_the_interface_checks_catch_a_broken_adapter(toy_module, name, problem):
    problems = interface.check(name)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("name", ["torch", "reference", "torch-functional", "torch-autocast", "torch-inference-mode",
                                  "onnxruntime", "flax", "flax-nnx", "equinox", "haiku"])
def test_registered_adapters_pass_the_interface_checks(name):
    for module in REGISTRY[name][2]:
        pytest.importorskip(module)
    assert interface.check(name) == []


def test_torch_module_targets_pass_the_interface_checks():
    assert interface.check(normalize("torch-module:dropnorm/zoo/scratch.py")) == []


def _module_file(module: str) -> str:
    spec = importlib.util.find_spec(module if not module.startswith(".") else "dropnorm.adapters" + module)
    return spec.origin


@pytest.mark.parametrize("module", sorted({m for m, _extra, _mods in REGISTRY.values()}))
def test_every_adapter_module_has_the_registry_load(module):
    """load(name, device): the --impl name and the device, so the registry never sniffs a signature (read from
    the source, so that adapters whose framework is not installed are checked too)."""
    tree = ast.parse(open(_module_file(module)).read())
    loads = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "load"]
    assert loads, f"{module} has no load()"
    assert [a.arg for a in loads[0].args.args] == ["name", "device"], ast.dump(loads[0].args)


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - set(ALIASES) - {"reference"}))
def test_every_registered_implementation_has_its_deviations_file(name):
    """The third thing a new adapter adds (the reference is the specification's own: it has none)."""
    assert default_deviations_file(name) is not None, f"spec/deviations/{name}.toml is missing"
