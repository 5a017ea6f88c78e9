"""Implementations under test, selected by an --impl spec string.

  torch                     torch.nn.Dropout, Dropout2d, BatchNorm1d/2d/3d
  reference                 dropnorm's float64 numpy reference
  torch-module:TARGET       a user's torch.nn-compatible classes in TARGET,
                            an importable module name or a path to a .py file
  keras-torch, keras-jax,   keras.layers.Dropout, SpatialDropout2D, BatchNormalization
  keras-tensorflow          on that Keras backend (one backend per process)
  flax                      flax.linen Dropout and BatchNorm (jax)
  tensorflow                tf.keras (Keras 3 on the TensorFlow backend; same as keras-tensorflow)
  onnxruntime               ONNX Dropout / BatchNormalization models run in onnxruntime
  mlx, tinygrad, flax-nnx,  more frameworks (docs/matrix-more.md)
  equinox, paddle, haiku,
  candle, mxnet
  torch-functional, ...     torch's own layers along other execution paths (compile, autocast,
                            inference mode, export to ONNX; docs/execution-paths.md)
REGISTRY below is the full list.
The framework adapters need optional extras (pip install 'dropnorm[keras]',
'[flax]', '[tensorflow]', '[onnx]', ...: REGISTRY names each); without them load() raises
FrameworkUnavailable (a NotProvided) saying what to install.
"""
from __future__ import annotations

import os

from dropnorm.adapters.base import Implementation, Layer, NotProvided, Output
from dropnorm.errors import ImplSpecError

# The one registry of named implementations (the CLI, `dropnorm matrix` and the docs read it):
# --impl name -> (adapter module, extra to install, modules it needs)
REGISTRY = {
    "torch": ("torch_nn", None, ("torch",)),
    "reference": ("reference_impl", None, ("numpy",)),
    "keras-torch": ("keras_impl", "keras", ("keras", "torch")),
    "keras-jax": ("keras_impl", "keras-jax", ("keras", "jax")),
    "keras-tensorflow": ("keras_impl", "tensorflow", ("keras", "tensorflow")),
    "flax": ("flax_impl", "flax", ("flax", "jax")),
    "tensorflow": ("keras_impl", "tensorflow", ("keras", "tensorflow")),  # tf.keras: Keras 3 on TensorFlow
    "onnxruntime": ("onnxruntime_impl", "onnx", ("onnx", "onnxruntime")),
    # execution paths of torch's layers (dropnorm/adapters/torch_paths.py, docs/execution-paths.md)
    "torch-functional": ("torch_functional", None, ("torch",)),
    "torch-compile": ("torch_compile", None, ("torch",)),
    "torch-compile-fullgraph": ("torch_compile_fullgraph", None, ("torch",)),
    "torch-compile-dynamic": ("torch_compile_dynamic", None, ("torch",)),
    "torch-autocast": ("torch_autocast", None, ("torch",)),
    "torch-inference-mode": ("torch_inference_mode", None, ("torch",)),
    "torch-export-onnxruntime": ("torch_export_onnxruntime", "onnx", ("torch", "onnx", "onnxruntime", "onnxscript")),
    # more frameworks (issue 16; docs/matrix-more.md)
    "mlx": ("mlx_impl", "mlx", ("mlx",)),
    "tinygrad": ("tinygrad_impl", "tinygrad", ("tinygrad",)),
    "flax-nnx": ("flax_nnx_impl", "flax", ("flax", "jax")),
    "equinox": ("equinox_impl", "equinox", ("equinox", "jax")),
    "paddle": ("paddle_impl", "paddle", ("paddle",)),
    "haiku": ("haiku_impl", "haiku", ("haiku", "jax")),
    "candle": ("candle_impl", "candle", ("candle",)),
    "mxnet": ("mxnet_impl", "mxnet", ("mxnet",)),
}
ALIASES = {"keras-tensorflow": "tensorflow"}  # the same implementation under a second name
# torch's own layers along other execution paths: audited on request (docs/execution-paths.md), not in
# the framework matrix or the default test run (a compile path's audit takes an hour on two cores)
PATHS = {k for k, (m, _extra, _mods) in REGISTRY.items() if m.startswith("torch_") and m != "torch_nn"}
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


def load(spec: str, device: str = "cpu") -> Implementation:
    spec = normalize(spec)
    if spec == "reference":
        from dropnorm.adapters.reference_impl import ReferenceImplementation
        return ReferenceImplementation()
    if spec in FRAMEWORKS or spec in PATHS:
        import importlib
        import inspect
        module = importlib.import_module(f"dropnorm.adapters.{REGISTRY[spec][0]}")
        # an adapter serving several names (keras backends, flax) takes the name it was loaded by
        return module.load(spec) if inspect.signature(module.load).parameters else module.load()
    from dropnorm.adapters import torch_nn
    if spec == "torch":
        return torch_nn.torch_nn(device)
    return torch_nn.torch_module(spec.split(":", 1)[1], device)


__all__ = ["Implementation", "Layer", "NotProvided", "Output", "load", "normalize", "ImplSpecError", "IMPL_HELP", "bare_path_error"]
