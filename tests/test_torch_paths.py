"""The execution paths of torch's layers (dropnorm/adapters/torch_paths.py, docs/execution-paths.md):
each loads under its --impl name and keeps a few exact properties that the quick audits rely on.

Fast on purpose (the full audits of the paths are `dropnorm audit --impl torch-<path>`): the compile
tests compile two tiny modules (a few seconds once inductor's on-disk cache is warm) and skip,
saying why, where torch.compile cannot run (no C++ compiler, no dynamo for this Python).

These tests check dropnorm's adapters, not an implementation: they cite no spec clause of their
own (clause markers are for property tests).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from dropnorm.adapters import REGISTRY, NotProvided, load, normalize
from dropnorm.adapters import torch_paths
from dropnorm.spec import default_deviations_file, load_deviations

PATHS = sorted(torch_paths.PATHS)


def _compile_available() -> str | None:
    """None when torch.compile with inductor can run here, else why not."""
    try:
        import torch._dynamo  # noqa: F401
        from torch._dynamo.eval_frame import is_dynamo_supported
        is_dynamo_supported()
    except Exception as e:  # noqa: BLE001 - any failure means: no compile here
        return f"torch.compile is unavailable: {type(e).__name__}: {e}"
    if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "torch.compile (inductor, CPU) needs a C++ compiler; none on PATH"
    return None


needs_compile = pytest.mark.skipif(_compile_available() is not None, reason=str(_compile_available()))


@pytest.mark.parametrize("name", PATHS)
def test_every_path_is_registered_and_loads(name):
    assert name in REGISTRY and normalize(name) == name
    impl = load(name)
    assert impl.name == name and impl.version == torch.__version__
    assert all(impl.provides(k) for k in ("Dropout", "Dropout2d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d"))
    path = default_deviations_file(name)
    assert path is None or load_deviations(path)


def _bn_steps(layer_module, momentum, steps=3):
    torch.manual_seed(0)
    xs = [torch.randn(4, 3, 2, 2) * (i + 1) + i for i in range(steps)]
    ys = [layer_module(x) for x in xs]
    return ys


@pytest.mark.parametrize("momentum", [0.1, None])
def test_functional_running_update_matches_eager(momentum):
    """F.batch_norm with the holder's buffers and counter gives torch.nn's outputs and running statistics
    bit for bit (the same ATen kernel); momentum=None as 1/num_batches_tracked is the cumulative average."""
    impl = load("torch-functional")
    layer = impl.batchnorm(2, 3, momentum=momentum)
    eager = nn.BatchNorm2d(3, momentum=momentum)
    torch.manual_seed(0)
    for i in range(3):
        x = np.random.default_rng(i).normal(size=(4, 3, 2, 2)) * (i + 1) + i
        out = layer.forward(x)
        with torch.no_grad():
            y = eager(torch.from_numpy(x).float())
        np.testing.assert_array_equal(out.y, y.double().numpy())
    state = layer.state()
    np.testing.assert_array_equal(state["running_mean"], eager.running_mean.double().numpy())
    np.testing.assert_array_equal(state["running_var"], eager.running_var.double().numpy())
    assert state["num_batches_tracked"] == int(eager.num_batches_tracked) == 3
    layer.train(False)
    eager.eval()
    x = np.linspace(-2, 2, 24).reshape(2, 3, 2, 2)
    with torch.no_grad():
        np.testing.assert_array_equal(layer.forward(x).y, eager(torch.from_numpy(x).float()).double().numpy())


def test_functional_dropout_draws_eager_masks():
    """F.dropout is what nn.Dropout calls: after the same seed the same mask."""
    impl = load("torch-functional")
    layer = impl.dropout(p=0.3)
    x = np.ones((8, 16))
    impl.seed(5)
    y = layer.forward(x).y
    torch.manual_seed(5)
    np.testing.assert_array_equal(y, nn.Dropout(0.3)(torch.ones(8, 16)).double().numpy())


def test_inference_mode_has_no_gradients_and_runs_both_modes():
    impl = load("torch-inference-mode")
    layer = impl.batchnorm(2, 3)
    x = np.linspace(-1, 1, 24).reshape(2, 3, 2, 2)
    with pytest.raises(NotProvided, match="inference_mode"):
        layer.forward_backward(x, np.ones_like(x))
    with pytest.raises(NotProvided):
        layer.gradcheck(x, second_order=False)
    layer.forward(x)  # a training forward under inference_mode updates the (normal) running buffers
    assert layer.state()["num_batches_tracked"] == 1
    assert not np.array_equal(layer.state()["running_mean"], np.zeros(3))


def test_autocast_keeps_dropout_dtype():
    """Dropout is on no CPU autocast list: a float32 input stays float32 under bfloat16 autocast."""
    impl = load("torch-autocast")
    out = impl.dropout(p=0.5).forward(np.ones((4, 4)), dtype="float32")
    assert out.dtype == "float32"


@needs_compile
def test_compiled_dropout_p1_gives_zeros():
    """Regression case of pytorch/pytorch#100025 / #107942 (compiled Dropout(p=1) raised
    ZeroDivisionError): on torch 2.13 it returns zeros, as DO-P1-01 requires."""
    impl = load("torch-compile")
    layer = impl.dropout(p=1.0)
    out = layer.forward(np.arange(1.0, 13.0).reshape(3, 4))
    np.testing.assert_array_equal(out.y, np.zeros((3, 4)))
    assert out.dtype == "float32"


@needs_compile
def test_compiled_dropout_seeds_its_own_stream():
    """pytorch/pytorch#158643 / #141557: compiled dropout draws from torch's generator differently from
    eager. The spec asks only that a seed reproduces the mask (DO-SEED-01) and that masks are Bernoulli:
    both hold, and the differing stream is not a failure."""
    impl = load("torch-compile")
    layer = impl.dropout(p=0.5)
    x = np.ones(2000)
    impl.seed(3)
    a = layer.forward(x).y
    impl.seed(3)
    b = layer.forward(x).y
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 2.0} and 800 < np.count_nonzero(a) < 1200


@pytest.mark.parametrize("name", ["torch-compile", "torch-compile-fullgraph", "torch-compile-dynamic"])
def test_compiled_paths_declare_no_double_backward(name):
    """gradgradcheck through a compiled function raises 'torch.compile with aot_autograd does not currently
    support double backward' (torch 2.13): the compile paths report it as not provided, before compiling."""
    layer = load(name).batchnorm(2, 2)
    with pytest.raises(NotProvided, match="double backward"):
        layer.gradcheck(np.ones((2, 2, 2, 2)), second_order=True)
