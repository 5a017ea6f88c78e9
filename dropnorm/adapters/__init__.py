"""Implementations under test, selected by an --impl name: the registry and its loader.

  torch                     torch.nn's layers (adapters/torch/nn.py)
  torch-module:TARGET       a user's torch.nn-compatible classes in TARGET, an importable module name or a
                            path to a .py file (adapters/torch/nn.py)
  reference                 dropnorm's float64 numpy reference (adapters/reference_impl.py)
  one of FRAMEWORKS         another framework's layers (docs/matrix.md, docs/matrix-more.md): the JAX family
                            in adapters/jax/ (one base), the others one module each
  one of PATHS              torch's own layers along another execution path (compile, autocast, inference
                            mode, functional, export to ONNX; adapters/torch/paths.py, docs/execution-paths.md)
REGISTRY below is the full list. Adding an adapter is its module (a `load(name, device)` and the
Implementation it returns, base.py), one REGISTRY line and its spec/deviations/<name>.toml; tests/
test_adapter_interface.py states it. The framework adapters need optional extras (pip install
'dropnorm[keras]', '[flax]', '[onnx]', ...: REGISTRY names each); without them load() raises
FrameworkUnavailable (a NotProvided) saying what to install.
"""
from __future__ import annotations

import os

from dropnorm.adapters.base import Implementation, Layer, NotProvided, Output
from dropnorm.errors import ImplSpecError

# The one registry of named implementations (the CLI, `dropnorm matrix` and the docs read it):
# --impl name -> (adapter module, extra to install, modules it needs). The module is relative to
# dropnorm.adapters (".keras_impl") or absolute (another package's adapter, a test's toy); every adapter module
# has `load(name, device)`, called with the --impl name (one module may serve several names).
REGISTRY = {
    "torch": (".torch.nn", None, ("torch",)),
    "reference": (".reference_impl", None, ("numpy",)),
    "keras-torch": (".keras_impl", "keras", ("keras", "torch")),
    "keras-jax": (".keras_impl", "keras-jax", ("keras", "jax")),
    "keras-tensorflow": (".keras_impl", "tensorflow", ("keras", "tensorflow")),
    "flax": (".jax.flax", "flax", ("flax", "jax")),
    "tensorflow": (".keras_impl", "tensorflow", ("keras", "tensorflow")),  # tf.keras: Keras 3 on TensorFlow
    "onnxruntime": (".onnxruntime_impl", "onnx", ("onnx", "onnxruntime")),
    # execution paths of torch's layers (dropnorm/adapters/torch/paths.py, docs/execution-paths.md)
    "torch-functional": (".torch.paths", None, ("torch",)),
    "torch-compile": (".torch.paths", None, ("torch",)),
    "torch-compile-fullgraph": (".torch.paths", None, ("torch",)),
    "torch-compile-dynamic": (".torch.paths", None, ("torch",)),
    "torch-autocast": (".torch.paths", None, ("torch",)),
    "torch-inference-mode": (".torch.paths", None, ("torch",)),
    "torch-export-onnxruntime": (".torch.export_onnxruntime", "onnx", ("torch", "onnx", "onnxruntime", "onnxscript")),
    # more frameworks (issue 16; docs/matrix-more.md)
    "mlx": (".mlx_impl", "mlx", ("mlx",)),
    "tinygrad": (".tinygrad_impl", "tinygrad", ("tinygrad",)),
    "flax-nnx": (".jax.flax_nnx", "flax", ("flax", "jax")),
    "equinox": (".jax.equinox", "equinox", ("equinox", "jax")),
    "paddle": (".paddle_impl", "paddle", ("paddle",)),
    "haiku": (".jax.haiku", "haiku", ("haiku", "jax")),
    "candle": (".candle_impl", "candle", ("candle",)),
    "mxnet": (".mxnet_impl", "mxnet", ("mxnet",)),
}
ALIASES = {"keras-tensorflow": "tensorflow"}  # the same implementation under a second name
# torch's own layers along other execution paths: audited on request (docs/execution-paths.md), not in
# the framework matrix or the default test run (a compile path's audit takes an hour on two cores)
PATHS = {k for k, (m, _extra, _mods) in REGISTRY.items() if m.startswith(".torch.") and m != ".torch.nn"}
FRAMEWORKS = {k: (m, extra) for k, (m, extra, _mods) in REGISTRY.items()
              if k not in ("torch", "reference") and k not in PATHS}
IMPL_HELP = ("torch (default), reference, torch-module:MODULE_OR_FILE.py, one of " + ", ".join(FRAMEWORKS)
             + ", or an execution path: " + ", ".join(sorted(PATHS)))


def normalize(spec: str) -> str:
    """Make a torch-module file target absolute, before any worker sees it."""
    if spec.startswith("torch-module:"):
        target = spec.split(":", 1)[1]
        if not target:
            raise ImplSpecError("torch-module: needs a target, e.g. torch-module:my_layers.py")
        if target.endswith(".py") or os.sep in target:
            target = os.path.abspath(target)
        return "torch-module:" + target
    if spec in REGISTRY:
        return spec
    raise ImplSpecError(f"unknown implementation {spec!r}: use {IMPL_HELP}")


def bare_path_error(spec: str) -> str | None:
    """The usage error for an --impl value that is a path without its torch-module: prefix (my_layers.py,
    layers/ops.py, or a name whose .py file lies here), else None."""
    if spec in REGISTRY or spec.startswith("torch-module:"):
        return None
    if spec.endswith(".py") or os.sep in spec or os.path.isfile(spec) or os.path.isfile(spec + ".py"):
        return (f"--impl {spec}: a file or module of your own is named with the torch-module: prefix; "
                f"did you mean --impl torch-module:{spec}?")
    return None


def adapter_module(spec: str) -> str:
    """The module that serves a normalised --impl value (as REGISTRY writes it: relative to dropnorm.adapters
    or absolute)."""
    return ".torch.nn" if spec.startswith("torch-module:") else REGISTRY[spec][0]


def load(spec: str, device: str = "cpu") -> Implementation:
    """The Implementation an --impl value names, from its adapter module's load(name, device)."""
    import importlib

    spec = normalize(spec)
    return importlib.import_module(adapter_module(spec), package=__name__).load(spec, device)


__all__ = ["Implementation", "Layer", "NotProvided", "Output", "load", "normalize", "ImplSpecError", "IMPL_HELP",
           "bare_path_error", "REGISTRY", "ALIASES", "PATHS", "FRAMEWORKS", "adapter_module"]
