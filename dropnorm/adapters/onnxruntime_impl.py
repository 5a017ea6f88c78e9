"""Adapter for ONNX Dropout and BatchNormalization run in onnxruntime (--impl onnxruntime).

Each layer is a one-node ONNX model built with onnx.helper (Dropout opset 13,
BatchNormalization opset 15, IR version 10) and run by an onnxruntime CPU
InferenceSession. Convention "onnx" (spec/conventions.toml): momentum weighs
the old value (the adapter passes 1 - torch's momentum), the running variance
is the population (biased) variance, eps and momentum are float32 attributes.

Mapping of the torch-style interface:
  construction     the model is built and a session created (onnxruntime validates
                   the model there): that is where ONNX validates anything
  Dropout(p)       ratio is a runtime input of the node: a constant initializer here;
                   training_mode is the node's boolean input (false in eval)
  BatchNorm        training_mode=1 node (outputs Y, running_mean, running_var) in
                   training, training_mode=0 node in eval; the running statistics
                   are held by the caller (this adapter), as ONNX intends
  affine=False     scale = 1 and B = 0 inputs (ONNX has no option; that is how
                   exporters write affine=False); no learnable state is reported
  seed(s)          onnxruntime.set_seed(s) (nodes carry no seed attribute)
  roundtrip        the eval model with its state as initializers, serialized and parsed
Not provided: Dropout2d (no ONNX operator), inplace, p = 1 (ratio must be in
[0, 1)), momentum=None, track_running_stats=False, bfloat16 (no CPU kernels),
gradients (an inference runtime), reading the generator state.
Errors onnxruntime raises for a bad input (its own exception classes, from C++
status codes) are re-raised as RuntimeError naming onnxruntime.
"""
from __future__ import annotations

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import FlagModeLayer, Implementation, Limit, NotProvided, Output
from dropnorm.adapters.layouts import numpy_view
from dropnorm.spec.dtypes import round_to

onnx = c.require("onnx", "onnx", "onnxruntime")
ort = c.require("onnxruntime", "onnx", "onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ort.set_default_logger_severity(3)  # errors reach the tests as exceptions; keep the C++ log quiet

ONNX_TYPES = {"float64": TensorProto.DOUBLE, "float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}
NP_TYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
# (input dtype, parameter dtype) pairs with a CPU BatchNormalization kernel in onnxruntime 1.31 (probed)
BN_KERNELS = {("float64", "float64"), ("float32", "float32"), ("float16", "float16"), ("float16", "float32")}
DROPOUT_DTYPES = ("float64", "float32", "float16")
IR_VERSION = 10
_sessions: dict = {}


def _session(model) -> "ort.InferenceSession":
    key = model.SerializeToString()
    if key not in _sessions:
        _sessions[key] = ort.InferenceSession(key, providers=["CPUExecutionProvider"])
    return _sessions[key]


def _run(session, feeds):
    try:
        return session.run(None, feeds)
    except Exception as e:  # onnxruntime's pybind exception classes (Fail, InvalidArgument, ...)
        if type(e).__module__.startswith("onnxruntime"):
            raise RuntimeError(f"onnxruntime: {e}") from e
        raise


def _model(node, inputs, outputs, opset, initializers=()):
    graph = helper.make_graph([node], "dropnorm", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)


def _vi(name, dtype, shape=None):
    return helper.make_tensor_value_info(name, ONNX_TYPES[dtype] if isinstance(dtype, str) else dtype, shape)


class _OrtLayer(FlagModeLayer):
    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        raise NotProvided("onnxruntime is an inference runtime: no gradients")

    @staticmethod
    def _input(x, dtype, layout):
        if dtype not in NP_TYPES:  # no numpy array of it to feed (bfloat16); the dtype Limits decline it first
            raise NotProvided(f"onnxruntime has no CPU kernel for {dtype}")
        return numpy_view(round_to(x, dtype).astype(NP_TYPES[dtype]), layout)


class OrtDropout(c.StatelessDropout, _OrtLayer):
    def __init__(self, impl, p, inplace):
        super().__init__(impl, "Dropout", dict(p=p, inplace=inplace))
        self.p = p
        for dtype in DROPOUT_DTYPES:  # build the model and its session: ONNX's construction
            self._session(dtype)

    def _session(self, dtype):
        ratio = numpy_helper.from_array(np.array(self.p, dtype=np.float64), "ratio")
        node = helper.make_node("Dropout", ["x", "ratio", "training_mode"], ["y"])
        return _session(_model(node, [_vi("x", dtype), _vi("training_mode", TensorProto.BOOL, [])],
                               [_vi("y", dtype)], 13, [ratio]))

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        xin = self._input(x, dtype, layout)
        (y,) = _run(self._session(dtype), {"x": xin, "training_mode": np.array(self._training)})
        return Output(y=c.f64(y), dtype=str(y.dtype), x_after=c.f64(xin), shares_input_memory=False)



class OrtBatchNorm(_OrtLayer):
    def __init__(self, impl, dims, kwargs, defaults=False):
        super().__init__(impl, f"BatchNorm{dims}d", kwargs)
        conv = impl.conv
        self.attrs = {} if defaults else {"epsilon": kwargs["eps"],
                                          "momentum": conv.framework_momentum(kwargs["momentum"])}
        c_ = kwargs["num_features"]
        self.affine = bool(kwargs["affine"])
        self.param_dtype = "float32"
        self.weight = np.ones(c_) if self.affine else None
        self.bias = np.zeros(c_) if self.affine else None
        self.running_mean, self.running_var = np.zeros(c_), np.ones(c_)
        self.num_features = c_
        self._session("float32", True)  # build the training model and its session: ONNX's construction

    def _session(self, dtype, training):
        self.impl.refuse(self.kind, dtype=dtype, param_dtype=self.param_dtype)
        outs = ["Y", "running_mean", "running_var"] if training else ["Y"]
        node = helper.make_node("BatchNormalization", ["X", "scale", "B", "input_mean", "input_var"], outs,
                                training_mode=int(training), **self.attrs)
        pd = self.param_dtype
        return _session(_model(node, [_vi("X", dtype)] + [_vi(n, pd) for n in ("scale", "B", "input_mean",
                                                                                 "input_var")],
                               [_vi("Y", dtype)] + [_vi(n, pd) for n in outs[1:]], 15))

    def _params(self):
        ones, zeros = np.ones(self.num_features), np.zeros(self.num_features)
        t = NP_TYPES[self.param_dtype]
        return {"scale": np.asarray(ones if self.weight is None else self.weight, t),
                "B": np.asarray(zeros if self.bias is None else self.bias, t),
                "input_mean": np.asarray(self.running_mean, t), "input_var": np.asarray(self.running_var, t)}

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        xin = self._input(x, dtype, layout)
        outs = _run(self._session(dtype, self._training), {"X": xin, **self._params()})
        if self._training:
            self.running_mean, self.running_var = c.f64(outs[1]), c.f64(outs[2])
        return Output(y=c.f64(outs[0]), dtype=str(outs[0].dtype), x_after=c.f64(xin), shares_input_memory=False)

    def state(self):
        return {"weight": c.f64(self.weight), "bias": c.f64(self.bias), "running_mean": c.f64(self.running_mean),
                "running_var": c.f64(self.running_var), "num_batches_tracked": None, "param_dtype": self.param_dtype}

    def load(self, **values):
        for key, value in values.items():
            if key == "num_batches_tracked" or getattr(self, key, None) is None:
                raise NotProvided(f"ONNX BatchNormalization has no {key}")
            setattr(self, key, round_to(np.asarray(value, np.float64), self.param_dtype))

    def to(self, dtype):
        self.impl.refuse(self.kind, param_dtype=dtype)
        self.param_dtype = dtype
        for key in ("weight", "bias", "running_mean", "running_var"):
            if getattr(self, key) is not None:
                setattr(self, key, round_to(getattr(self, key), dtype))

    def roundtrip(self):
        node = helper.make_node("BatchNormalization", ["X", "scale", "B", "input_mean", "input_var"], ["Y"],
                                **self.attrs)
        inits = [numpy_helper.from_array(v, k) for k, v in self._params().items()]
        model = _model(node, [_vi("X", "float32")], [_vi("Y", "float32")], 15, inits)
        loaded = onnx.load_from_string(model.SerializeToString())
        values = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in loaded.graph.initializer}
        fresh = OrtBatchNorm(self.impl, int(self.kind[9]), self.kwargs, defaults=not self.attrs)
        fresh.param_dtype = self.param_dtype
        fresh.running_mean, fresh.running_var = values["input_mean"], values["input_var"]
        if self.affine:
            fresh.weight, fresh.bias = values["scale"], values["B"]
        fresh._training = self._training
        return fresh


class OrtImplementation(Implementation):
    name = "onnxruntime"
    convention = "onnx"
    # a model and a session per layer and dtype, gradients by finite differences of sessions: a loaded
    # 2-core CI machine ran DO-GRAD-01 past 20x torch's cost (67 s)
    cost_factor = 10.0
    missing = {"Dropout2d": "ONNX has no channel-dropout operator (Dropout is element-wise only)"}
    limits = (c.no_inplace("onnxruntime Dropout: inplace (a graph has no in-place contract)"),
              Limit.on("p", lambda p: p == 1.0,
                       "ONNX Dropout: ratio must be in [0, 1) (p = 1 is outside the operator's domain)"),
              *c.fixed_statistics("ONNX BatchNormalization"),
              Limit(("dtype",), lambda o: (o["dtype"], o.get("param_dtype", "float32")) not in BN_KERNELS,
                    "onnxruntime has no CPU BatchNormalization kernel for {dtype} input with {param_dtype} parameters",
                    kinds=("BatchNorm",)),
              Limit(("dtype",), lambda o: o["dtype"] not in DROPOUT_DTYPES, "onnxruntime has no CPU kernel for {dtype}",
                    kinds=("Dropout",)),
              # parameters converted on their own (Layer.to): the input's dtype is asked separately
              Limit(("param_dtype",), lambda o: "dtype" not in o and o["param_dtype"] not in NP_TYPES,
                    "onnxruntime has no {param_dtype} BatchNormalization kernel"))

    def __init__(self):
        from dropnorm.spec import conventions
        self.version = f"onnxruntime {ort.__version__}, onnx {onnx.__version__}"
        self.target = "ONNX Dropout-13 / BatchNormalization-15 in onnxruntime (CPU)"
        self.conv = conventions.get(self.convention)

    def seed(self, seed):
        ort.set_seed(int(seed))

    def rng_state(self):
        raise NotProvided("onnxruntime exposes no generator state (only onnxruntime.set_seed)")

    def dropout(self, p=0.5, inplace=False):
        self.refuse("Dropout", p=p, inplace=inplace)
        return OrtDropout(self, p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        raise NotProvided(self.missing["Dropout2d"])

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = dict(num_features=num_features, eps=eps, momentum=momentum, affine=affine,
                  track_running_stats=track_running_stats)
        self.refuse(f"BatchNorm{dims}d", **kw)
        return OrtBatchNorm(self, dims, kw)

    def batchnorm_defaults(self, dims, num_features):
        return OrtBatchNorm(self, dims, dict(num_features=num_features, eps=None, momentum=0.1, affine=True,
                                             track_running_stats=True), defaults=True)


def load(name: str = "onnxruntime", device: str = "cpu") -> OrtImplementation:
    """--impl onnxruntime (the registry's loader; this adapter runs on the CPU: `device` is not used)."""
    return OrtImplementation()
