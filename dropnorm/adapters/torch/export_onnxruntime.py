"""--impl torch-export-onnxruntime: torch.nn's layers exported with torch.onnx.export (the dynamo
exporter, onnxscript's torchlib) and run by an onnxruntime CPU InferenceSession (docs/execution-paths.md).

What a model deployed through ONNX runs: the layer's module is exported as it stands (mode, p, eps,
momentum, parameter dtype), the ONNX model is run in onnxruntime, and the eager module keeps the state
(parameters, buffers, state_dict round trip, .to(dtype)), as a deployment pipeline keeps the checkpoint.

Export is costly (seconds per call), so it is amortised:
  - one export per layer configuration (kind, keywords, mode, parameter dtype, input dtype, rank), with
    dynamic shapes (torch.export.Dim.AUTO on every dimension but BatchNorm's channels): an exported model is
    reused for every input whose shape fits its ONNX input signature (static dims equal; symbolic dims >= 2,
    equal where they share a symbol; export specialises sizes 0 and 1), and a new shape signature is a new
    export;
  - the module's current parameters and buffers are written into the exported model's initializers (which
    the exporter names after the state_dict keys) and a session is cached per (export, state values);
    a state the initializers do not carry (a folded constant) is exported afresh.

Not provided (NotProvided with the reason, never a pass):
  - BatchNorm in training mode: torch.onnx.export (torch 2.13, onnxscript 0.7.2) exports a train-mode
    BatchNorm as an *eval-mode* BatchNormalization (onnxscript's aten__native_batch_norm_legit_functional
    forces `training = False`, a workaround for onnxruntime's opset >= 14 training kernels; the running
    statistic updates of the exported program are dropped) with only a UserWarning "Exporting a model while
    it is in training mode". The path cannot run a training BatchNorm; the silent conversion is the finding
    docs/findings/torch-export-onnx-train-batchnorm-exported-as-eval.md (pinned by
    tests/test_torch_paths.py::test_export_of_train_mode_batchnorm_is_eval).
  - inplace (an ONNX graph has no in-place contract; export functionalises), gradients (an inference
    runtime), bfloat16 (no onnxruntime CPU kernels for these operators), reading the generator state
    (onnxruntime exposes only set_seed).
Training Dropout is exported faithfully (ONNX Dropout with training_mode = true) and audited.
Exporter errors (torch.onnx's OnnxExporterError is a RuntimeError) and onnxruntime's errors (re-raised as
RuntimeError naming onnxruntime) reach the tests as errors.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import warnings

import numpy as np
import torch

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import NotProvided
from dropnorm.adapters.torch.paths import PathImplementation, PathLayer

onnx = c.require("onnx", "onnx", "torch-export-onnxruntime")
ort = c.require("onnxruntime", "onnx", "torch-export-onnxruntime")
c.require("onnxscript", "onnx", "torch-export-onnxruntime")  # the dynamo exporter's op library
from onnx import numpy_helper  # noqa: E402

ort.set_default_logger_severity(3)
logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" and progress lines

NP_TYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
TRAIN_BN_REASON = ("torch.onnx.export exports a train-mode BatchNorm as an eval-mode BatchNormalization "
                   "(onnxscript forces training=False; only a UserWarning): the path cannot run a training "
                   "BatchNorm (docs/findings/torch-export-onnx-train-batchnorm-exported-as-eval.md)")

# configuration key -> [(ONNX input signature, traced shape, ModelProto, state names in its initializers,
#                         digest of the state values when the initializers do not carry all of them)]
_exports: dict = {}
_sessions: dict = {}  # (id of a ModelProto, state digest) -> InferenceSession


def _signature(model) -> tuple:
    """The input's ONNX shape: an int per static dim, the symbol's name per dynamic dim."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims)


def _fits(sig: tuple, traced: tuple, shape: tuple) -> bool:
    """Whether an export (ONNX input signature `sig`, traced on an input of shape `traced`) serves `shape`.
    A symbolic dim serves sizes >= 2 and the size it was traced with (export reasons about 0 and 1 as
    special sizes; a model traced at 7 is not trusted at 1 or 0); dims sharing a symbol must be equal."""
    if len(sig) != len(shape):
        return False
    bound: dict = {}
    for s, n0, n in zip(sig, traced, shape):
        if isinstance(s, int):
            if s != n:
                return False
        elif (n < 2 and n != n0) or bound.setdefault(s, n) != n:
            return False
    return True


def _run_session(session, feeds):
    try:
        return session.run(None, feeds)
    except Exception as e:  # onnxruntime's pybind exception classes
        if type(e).__module__.startswith("onnxruntime"):
            raise RuntimeError(f"onnxruntime: {e}") from e
        raise


class ExportLayer(PathLayer):
    def _check_gradients(self, second_order):
        raise NotProvided("torch-export-onnxruntime: onnxruntime is an inference runtime, no gradients")


class ExportOnnxruntimeImplementation(PathImplementation):
    path_name = "torch-export-onnxruntime"
    path_target = "torch.onnx.export(torch.nn module, dynamo=True) run in onnxruntime (CPU)"
    convention = "torch"
    # an export takes 3-9 s on the loaded 2-core machine, once per configuration and shape signature
    cost_factor = 20.0

    def __init__(self, device: str = "cpu"):
        if device != "cpu":
            raise NotProvided("torch-export-onnxruntime runs onnxruntime's CPU execution provider only")
        super().__init__(device)
        import onnxscript
        self.version = (f"torch {torch.__version__}, onnxscript {onnxscript.__version__}, "
                        f"onnxruntime {ort.__version__}")
        self.exports_done = 0  # how many torch.onnx.export calls this implementation made (amortisation)

    # ------------------------------------------------------------------ what the path can express
    def expresses(self, kind, **o):
        if o.get("inplace") or (kind.startswith("BatchNorm") and o.get("training")):
            return False  # training BatchNorm: TRAIN_BN_REASON
        if o.get("dtype", "float32") not in NP_TYPES or o.get("param_dtype", "float32") not in NP_TYPES:
            return False
        return super().expresses(kind, **{k: v for k, v in o.items() if k not in ("dtype", "param_dtype")})

    def _construct(self, kind, kwargs):
        if kwargs.get("inplace"):
            raise NotProvided("torch.onnx.export: an ONNX graph has no in-place contract (export functionalises "
                              "inplace=True)")
        cls = getattr(self.ns, kind, None)
        if not isinstance(cls, type):
            raise NotProvided(f"{self.target} does not define a class named {kind}")
        return ExportLayer(self, kind, cls, kwargs, cls(**kwargs))

    def seed(self, seed):
        """onnxruntime.set_seed(seed), and fresh sessions from here on. onnxruntime's ONNX Dropout kernel
        draws from the global generator that set_seed resets, but RandomUniformLike (the exported channel
        and alpha dropout masks) seeds a generator of its own when the session is created and set_seed does
        not touch it afterwards: a session created before the seed would continue its old stream. A
        deployment that seeds for reproducibility creates its session after seeding; so does the adapter
        (sessions are cheap; the exports stay cached)."""
        torch.manual_seed(seed)  # export itself draws nothing; the masks come from onnxruntime
        ort.set_seed(int(seed))
        _sessions.clear()

    def rng_state(self):
        raise NotProvided("onnxruntime exposes no generator state (only onnxruntime.set_seed)")

    # ------------------------------------------------------------------ the path
    def run(self, layer, t):
        module = layer.module
        if layer.kind.startswith("BatchNorm") and module.training:
            raise NotProvided(TRAIN_BN_REASON)
        dtype = str(t.dtype).replace("torch.", "")
        if dtype not in NP_TYPES:
            raise NotProvided(f"onnxruntime has no CPU {layer.kind} kernel for {dtype}")
        state = {k: v for k, v in module.state_dict().items() if v.is_floating_point()}
        pdtype = str(next(iter(state.values())).dtype).replace("torch.", "") if state else None
        if pdtype is not None and pdtype not in NP_TYPES:
            raise NotProvided(f"onnxruntime has no CPU {layer.kind} kernel for {pdtype} parameters")
        key = (layer.kind, tuple(sorted(layer.kwargs.items())), module.training, pdtype, dtype, t.ndim)
        entry = self._export(layer, t, key, state)
        sig, model, names = entry
        values = {n: state[n].detach().cpu().numpy() for n in names}
        digest = hashlib.sha256(b"".join(v.tobytes() for v in values.values())).hexdigest()
        skey = (id(model), digest)
        if skey not in _sessions:
            if names:
                m = onnx.ModelProto()
                m.CopyFrom(model)
                for init in m.graph.initializer:
                    if init.name in values:
                        init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
            else:
                m = model
            try:
                _sessions[skey] = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - onnxruntime's pybind classes
                if type(e).__module__.startswith("onnxruntime"):
                    raise RuntimeError(f"onnxruntime: {e}") from e
                raise
        session = _sessions[skey]
        x = np.array(t.detach().cpu().numpy(), order="C")  # (ascontiguousarray makes a 0-d array 1-d)
        (y,) = _run_session(session, {session.get_inputs()[0].name: x})
        return torch.from_numpy(np.array(y))

    def _export(self, layer, t, key, state):
        shape = tuple(t.shape)
        for sig, traced, model, names, digest in _exports.get(key, ()):
            # an export whose initializers do not carry every state tensor (the optimiser folded or
            # deduplicated one) is reused only for the state values it was made with
            if _fits(sig, traced, shape) and (digest is None or digest == self._digest(state)):
                return sig, model, names
        program = self._export_program(layer.module, t, layer.kind, distinct=True)
        model = program.model_proto
        names = self._state_initializers(model, self._distinct_values(layer.module))
        if names is None:  # the optimiser folded or merged a state tensor: export the module as it stands
            model = self._export_program(layer.module, t, layer.kind, distinct=False).model_proto
            names = ()
        digest = None if len(names) == len(state) else self._digest(state)
        entry = (_signature(model), shape, model, names, digest)
        _exports.setdefault(key, []).append(entry)
        return entry[0], entry[2], entry[3]

    def _export_program(self, module, t, kind, *, distinct):
        """torch.onnx.export(module) with dynamic shapes. distinct=True exports a copy whose floating state
        holds distinct values, so that onnxscript's optimiser (which merges equal constants: a fresh
        BatchNorm's running_mean equals its bias, running_var its weight) keeps one initializer per state
        tensor; the caller then writes the real values into them. The graph does not depend on the values
        otherwise (checked by the caller: every state tensor must come back as an initializer of its own)."""
        if distinct:
            module = copy.deepcopy(module)
            with torch.no_grad():
                distinct = self._distinct_values(module)
                for name, v in self._float_state(module).items():
                    v.copy_(distinct[name])
        dims = [torch.export.Dim.AUTO] * t.ndim
        if kind.startswith("BatchNorm") and t.ndim >= 2:
            dims[1] = None  # the channel count is the module's num_features
        shapes = ({i: d for i, d in enumerate(dims) if d is not None},) if t.ndim else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "training mode" and deprecation warnings of the exporter
            program = torch.onnx.export(module, (t.detach().clone(),), dynamo=True, verbose=False,
                                        dynamic_shapes=shapes)
        self.exports_done += 1
        return program

    @staticmethod
    def _float_state(module) -> dict:
        return {k: v for k, v in module.state_dict().items() if v.is_floating_point()}

    @classmethod
    def _distinct_values(cls, module) -> dict:
        """Values for the module's floating state that no constant of an export can equal by chance (not 0,
        1, eps or each other; running_var positive): 0.7301 + 0.1129 i + 0.0137 j for tensor i, element j."""
        out = {}
        for i, (k, v) in enumerate(cls._float_state(module).items()):
            vals = 0.7301 + 0.1129 * i + 0.0137 * torch.arange(v.numel(), dtype=torch.float64)
            out[k] = vals.reshape(v.shape).to(v.dtype)
        return out

    @staticmethod
    def _state_initializers(model, distinct: dict):
        """The state names whose values the export carries as initializers of their own, unchanged, or None
        when it does not: a state tensor missing from the initializers (folded into another constant),
        changed, or equal to another initializer (merged: onnxscript's optimiser deduplicates equal
        constants, so a state value equal to a constant such as affine=False's ones would be shared with it
        and cannot be rewritten alone)."""
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for name, value in distinct.items():
            got = inits.get(name)
            if got is None or got.shape != tuple(value.shape) or not np.array_equal(got, value.numpy()):
                return None
        state_values = [v.numpy() for v in distinct.values()]
        for name, arr in inits.items():
            if name not in distinct and any(arr.shape == s.shape and np.array_equal(arr, s) for s in state_values):
                return None
        return tuple(distinct)

    @staticmethod
    def _digest(state):
        return hashlib.sha256(b"".join(v.detach().cpu().numpy().tobytes() for v in state.values())).hexdigest()


def load(name: str = "torch-export-onnxruntime", device: str = "cpu") -> ExportOnnxruntimeImplementation:
    """--impl torch-export-onnxruntime. `device` is not passed on: the path is audited on the CPU, as the
    execution paths are (torch/paths.py load)."""
    return ExportOnnxruntimeImplementation()
