"""Adapter for Keras 3 layers on one backend (--impl keras-torch, keras-jax, keras-tensorflow).

A Keras backend is fixed per process (KERAS_BACKEND, read when keras is first
imported): load() sets it before importing keras and refuses a second backend
in the same process. Convention "keras" (spec/conventions.toml): momentum
weighs the old value (the adapter passes 1 - torch's momentum), the moving
variance is fed the biased batch variance, default eps 1e-3.

Mapping of the torch-style interface:
  Dropout(p)           keras.layers.Dropout(rate=p) with autocast off: inputs keep their dtype
  Dropout2d(p)         keras.layers.SpatialDropout2D(rate=p, data_format="channels_first")
                       with autocast off, for (N, C, H, W) input
  BatchNormNd(C, eps, momentum, affine)
                       keras.layers.BatchNormalization(axis=1, epsilon=eps,
                       momentum=1 - momentum, center=affine, scale=affine), built for
                       (None, C, ...) at construction (Keras fixes the channel count and
                       rank when a layer is built; BatchNorm1d on rank-3 input gets a
                       layer built for rank 3 holding the same weights)
  input dtype, parameter dtype
                       the layer's dtype policy: float16 input with float32 parameters is
                       "mixed_float16" (bfloat16 likewise), same dtypes are that dtype's policy
  train()/eval()       the training= call argument
  state                gamma, beta, moving_mean, moving_variance; no counter
  roundtrip            get_config() -> from_config(), build, get_weights() -> set_weights()
  seed(s)              keras.utils.set_random_seed(s) (Python, NumPy, backend) and every
                       layer's SeedGenerator, at its first call after the seed, set to a stream
                       derived from s and its place in the order of first calls (prepare), as if
                       each had been built with its own seed=: Keras gives unseeded layers
                       distinct seeds, so two layers never share a mask stream (D2-SEED-01)
  gradients            the backend's autodiff: torch autograd, jax.vjp of stateless_call,
                       tf.GradientTape
Not provided: inplace, momentum=None, track_running_stats=False, gradcheck.
"""
from __future__ import annotations

import os
import random
import sys
import weakref

import numpy as np

from dropnorm.adapters import _common as c
from dropnorm.adapters.base import BATCHNORM_RANKS, FlagModeLayer, Implementation, Limit, NotProvided, Output
from dropnorm.adapters.layouts import numpy_view
from dropnorm.spec.dtypes import round_to

BACKENDS = {"keras-torch": "torch", "keras-jax": "jax", "keras-tensorflow": "tensorflow",
            "tensorflow": "tensorflow"}


def _import_keras(spec: str):
    backend = BACKENDS[spec]
    if "keras" not in sys.modules:
        c.require(backend if backend != "tensorflow" else "tensorflow", "keras" if backend == "torch" else
                  {"jax": "keras-jax", "tensorflow": "tensorflow"}[backend], spec)
        os.environ["KERAS_BACKEND"] = backend
        if backend == "jax":
            import jax
            jax.config.update("jax_enable_x64", True)  # float64 arrays need it in JAX
    keras = c.require("keras", "keras", spec)
    if keras.backend.backend() != backend:
        raise c.FrameworkUnavailable(
            f"--impl {spec}: this process already runs Keras on the {keras.backend.backend()} backend; a Keras "
            f"backend is fixed per process, so audit {spec} in its own pytest run")
    return keras


class KerasImplementation(Implementation):
    convention = "keras"
    cost_factor = 10.0  # a Keras layer call dispatches through the backend: several times torch's cost
    limits = (c.no_inplace("Keras layers have no in-place contract"),
              *c.fixed_statistics("Keras BatchNormalization"),
              # SpatialDropout2D documents 4-D input only ("4D tensor with shape (samples, channels, rows, cols)");
              # torch's Dropout2d also takes (N, C, L) and (C, H, W) (D2-RANK-01), which Keras cannot express
              Limit(("ndim",), lambda o: o["ndim"] != 4,
                    "keras.layers.SpatialDropout2D takes 4-D input only, not {ndim}-D", kinds=("Dropout2d",)),
              Limit(("dtype",), lambda o: _policy(o["dtype"], o.get("param_dtype", "float32")) is None,
                    "Keras has no dtype policy for {dtype} input with {param_dtype} parameters",
                    kinds=("BatchNorm",)))

    def __init__(self, spec: str):
        self.keras = keras = _import_keras(spec)
        self.backend = keras.backend.backend()
        self.name = spec
        self.target = f"keras.layers on the {self.backend} backend"
        bver = __import__(self.backend).__version__
        self.version = f"keras {keras.__version__}, {self.backend} {bver}"
        self._streams = {}               # id(layer) -> (weak reference, stream) since the last seed() (prepare)
        self._seed = None

    # ------------------------------------------------------------------ tensors
    def tensor(self, x: np.ndarray, dtype: str, layout: str):
        """A backend tensor of `dtype` with x's values (torch keeps the layout's strides)."""
        if self.backend == "torch":
            from dropnorm.adapters.torch.nn import make_tensor
            return make_tensor(x, dtype, layout)
        view = numpy_view(round_to(x, dtype), layout)
        return self.keras.ops.convert_to_tensor(view, dtype=dtype)

    def numpy(self, t) -> np.ndarray:
        if self.backend == "torch":
            import torch
            return t.detach().to(torch.float64).cpu().numpy().copy()
        return np.asarray(self.keras.ops.convert_to_numpy(self.keras.ops.cast(t, "float64")), dtype=np.float64)

    def dtype_name(self, t) -> str:
        return self.keras.backend.standardize_dtype(t.dtype)

    # ---------------------------------------------------------------------- RNG
    def prepare(self, layer):
        """Before a layer's forward: the first time it is called after seed(s), its SeedGenerator is set to
        the stream of its place in that order (0 for the first layer called, as [s, 0] always was; 1, 2, ...
        for the next ones), as if each had been built with its own seed= after set_random_seed(s). Keras
        gives unseeded layers distinct seeds drawn from Python's random, so two layers never share a mask
        stream (D2-SEED-01 fresh); the order of first calls after a seed is part of the example, so a
        reproduction script that replays it from its seed call gets the same streams (replay)."""
        if self._seed is None or getattr(layer, "seed_generator", None) is None:
            return
        ref, _ = self._streams.get(id(layer), (None, None))
        if ref is not None and ref() is layer:
            return
        index = len(self._streams)
        self._streams[id(layer)] = (weakref.ref(layer), index)
        state = layer.seed_generator.state
        derived = (self._seed + 1_000_003 * index) % 2 ** 31
        state.assign(self.keras.ops.convert_to_tensor([derived, 0], dtype=state.dtype))

    def seed(self, seed):
        self._seed = int(seed)
        # set_random_seed also seeds Python's and numpy's global generators, which Keras layers do not
        # draw from: keep those as they were (the suite restores and reports changes to them)
        py_state, np_state = random.getstate(), np.random.get_state()
        self.keras.utils.set_random_seed(int(seed) % 2 ** 32)
        random.setstate(py_state)
        np.random.set_state(np_state)
        self._streams = {}  # the order of first calls after this seed starts again (prepare)

    def rng_state(self) -> bytes:
        """The global generators only: torch's (torch backend) and Keras's global SeedGenerator if one
        exists. Each layer's own SeedGenerator is layer state, and the set of live layers changes as
        they are garbage-collected, so it cannot be part of a global snapshot; whether eval draws from
        a layer's generator is checked by replay (dropnorm/properties/test_dropout_modes.py)."""
        parts = []
        if self.backend == "torch":
            import torch
            parts.append(torch.get_rng_state().numpy().tobytes())
        try:
            from keras.src.backend.common import global_state
            generator = global_state.get_global_attribute("global_seed_generator")
        except ImportError:
            generator = None
        if generator is not None:
            parts.append(np.asarray(self.keras.ops.convert_to_numpy(generator.state.value)).tobytes())
        return b"".join(parts)

    # ------------------------------------------------------------ construction
    def dropout(self, p=0.5, inplace=False):
        self.refuse("Dropout", p=p, inplace=inplace)
        return KerasDropout(self, "Dropout", p, inplace)

    def dropout2d(self, p=0.5, inplace=False):
        self.refuse("Dropout2d", p=p, inplace=inplace)
        return KerasDropout(self, "Dropout2d", p, inplace)

    def batchnorm(self, dims, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        kw = c.batchnorm_keywords(self, dims, num_features, eps, momentum, affine, track_running_stats)
        config = dict(axis=1, epsilon=eps, momentum=self.conv.framework_momentum(momentum), center=affine,
                      scale=affine)
        return KerasBatchNorm(self, dims, kw, config)

    def batchnorm_defaults(self, dims, num_features):
        kw = dict(num_features=num_features, eps=None, momentum=None, affine=True, track_running_stats=True)
        return KerasBatchNorm(self, dims, kw, dict(axis=1))

    @property
    def conv(self):
        from dropnorm.spec import conventions
        return conventions.get(self.convention)


def _policy(dtype: str, param_dtype: str) -> str | None:
    if dtype == param_dtype:
        return dtype
    if param_dtype == "float32" and dtype in ("float16", "bfloat16"):
        return f"mixed_{dtype}"
    return None


class _KerasLayer(FlagModeLayer):
    def _call(self, layer, x, dtype, layout, dy=None):
        """Run `layer` on x (and backward with dy); returns (y, x_tensor, grads dict)."""
        impl = self.impl
        t = impl.tensor(x, dtype, layout)
        if dy is None:
            if impl.backend == "torch":
                import torch
                with torch.no_grad():
                    y = layer(t, training=self._training)
            else:
                y = layer(t, training=self._training)
            return y, t, {}
        dyt = impl.tensor(dy, dtype, "contiguous")
        if impl.backend == "torch":
            t = t.detach().requires_grad_(True)
            for v in layer.trainable_variables:
                v.value.grad = None
            y = layer(t, training=self._training)
            y.backward(dyt.to(y.dtype))
            grads = {v.path.split("/")[-1]: v.value.grad for v in layer.trainable_variables}
            return y, t, {"x": t.grad, **grads}
        if impl.backend == "tensorflow":
            import tensorflow as tf
            with tf.GradientTape() as tape:
                tape.watch(t)
                y = layer(t, training=self._training)
            g = tape.gradient(y, [t] + list(layer.trainable_variables), output_gradients=tf.cast(dyt, y.dtype))
            names = [v.path.split("/")[-1] for v in layer.trainable_variables]
            return y, t, {"x": g[0], **dict(zip(names, g[1:]))}
        import jax  # jax: vjp of the stateless call, then the state updates are written back
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def f(xx, tv):
            out, new_nt = layer.stateless_call(tv, non_trainable, xx, training=self._training)
            return out, new_nt

        y, vjp, new_nt = jax.vjp(f, t, trainable, has_aux=True)
        gx, gv = vjp(dyt.astype(y.dtype))
        for var, value in zip(layer.non_trainable_variables, new_nt):
            var.assign(value)
        names = [v.path.split("/")[-1] for v in layer.trainable_variables]
        return y, t, {"x": gx, **dict(zip(names, gv))}


class KerasDropout(c.StatelessDropout, _KerasLayer):
    def __init__(self, impl, kind, p, inplace):
        super().__init__(impl, kind, dict(p=p, inplace=inplace))
        keras = impl.keras
        if kind == "Dropout":
            self.layer = keras.layers.Dropout(rate=p)
        else:
            self.layer = keras.layers.SpatialDropout2D(rate=p, data_format="channels_first")
        self.layer.autocast = False  # the Layer argument autocast=False (SpatialDropout2D does not pass it on)

    def _out(self, y, t, grads, x_dtype):
        impl = self.impl
        same = y is t
        if impl.backend == "torch" and not same and y.numel() and t.numel():
            same = y.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()
        return Output(y=impl.numpy(y), dtype=impl.dtype_name(y), x_after=impl.numpy(t), shares_input_memory=same,
                      dx=None if "x" not in grads else impl.numpy(grads["x"]))

    def _documented_rank(self, x):
        self.impl.refuse(self.kind, ndim=np.ndim(x))

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        self._documented_rank(x)
        self.impl.prepare(self.layer)
        y, t, g = self._call(self.layer, x, dtype, layout)
        return self._out(y, t, g, dtype)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        self._documented_rank(x)
        self.impl.prepare(self.layer)
        y, t, g = self._call(self.layer, x, dtype, layout, dy=dy)
        if g.get("x") is None:  # eval and p = 0 return the input itself: the gradient is dy
            g["x"] = self.impl.tensor(dy, dtype, "contiguous")
        return self._out(y, t, g, dtype)



KERAS_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


class KerasBatchNorm(_KerasLayer):
    def __init__(self, impl, dims, kwargs, config):
        super().__init__(impl, f"BatchNorm{dims}d", kwargs)
        self.dims, self.config = dims, dict(config)
        self.num_features = kwargs["num_features"]
        self.param_dtype = "float32"
        self.rank = BATCHNORM_RANKS[dims][0]
        self.layer = self._build(self.rank, "float32")

    def _build(self, rank, policy, values=None):
        layer = self.impl.keras.layers.BatchNormalization(dtype=policy, **self.config)
        layer.build((None, self.num_features) + (None,) * (rank - 2))
        if values is not None:
            for name, value in values.items():
                self._assign(getattr(layer, name), value)
        return layer

    def _assign(self, var, value):
        ops = self.impl.keras.ops
        var.assign(ops.convert_to_tensor(np.asarray(value, dtype=np.float64), dtype=var.dtype))

    def _values(self):
        return {name: self.impl.numpy(getattr(self.layer, name).value)
                for name in KERAS_NAMES.values() if getattr(self.layer, name) is not None}

    def _layer_for(self, x, dtype):
        self.impl.refuse(self.kind, dtype=dtype, param_dtype=self.param_dtype)
        policy = _policy(dtype, self.param_dtype)
        rank = x.ndim if x.ndim in BATCHNORM_RANKS[self.dims] else self.rank
        if rank != self.rank or self.layer.dtype_policy.name != policy:
            self.layer, self.rank = self._build(rank, policy, self._values()), rank
        return self.layer

    def forward(self, x, *, dtype="float32", layout="contiguous"):
        y, t, _ = self._call(self._layer_for(x, dtype), x, dtype, layout)
        return Output(y=self.impl.numpy(y), dtype=self.impl.dtype_name(y), x_after=self.impl.numpy(t),
                      shares_input_memory=False)

    def forward_backward(self, x, dy, *, dtype="float32", layout="contiguous"):
        y, t, g = self._call(self._layer_for(x, dtype), x, dtype, layout, dy=dy)
        conv = (lambda k: None if g.get(k) is None else self.impl.numpy(g[k]))
        return Output(y=self.impl.numpy(y), dtype=self.impl.dtype_name(y), x_after=self.impl.numpy(t),
                      shares_input_memory=False, dx=conv("x"), dweight=conv("gamma"), dbias=conv("beta"))

    def state(self):
        values = self._values()
        out = {key: values.get(name) for key, name in KERAS_NAMES.items()}
        out.update(num_batches_tracked=None, param_dtype=self.param_dtype)
        return out

    def load(self, **values):
        for key, value in values.items():
            name = KERAS_NAMES.get(key)
            var = getattr(self.layer, name, None) if name else None
            if var is None:
                raise NotProvided(f"Keras BatchNormalization has no {key} (convention keras: no counter; "
                                  f"affine=False has no gamma/beta)")
            self._assign(var, value)

    def to(self, dtype):
        values = self._values()
        self.param_dtype = dtype
        self.layer = self._build(self.rank, dtype, values)

    def roundtrip(self):
        keras = self.impl.keras
        fresh_layer = keras.layers.BatchNormalization.from_config(self.layer.get_config())
        fresh_layer.build((None, self.num_features) + (None,) * (self.rank - 2))
        fresh_layer.set_weights(self.layer.get_weights())
        fresh = object.__new__(KerasBatchNorm)
        fresh.__dict__.update(self.__dict__)
        fresh.layer = fresh_layer
        return fresh


def load(name: str, device: str = "cpu") -> KerasImplementation:
    """--impl keras-torch, keras-jax, keras-tensorflow or tensorflow: the backend the name says (the CPU; `device`
    is not used)."""
    return KerasImplementation(name)
