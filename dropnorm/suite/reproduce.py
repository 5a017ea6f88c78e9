"""Standalone reproduction scripts, generated from the trace of a failing example.

`script(violation)` turns the calls recorded by dropnorm.suite.traced (constructor
arguments, seeds, the exact input values, state loaded, mode switches) into a
Python script that rebuilds the case, recomputes the quantity the failed check
compared, prints observed against expected (with the tolerance), and exits 1
while the failure reproduces, 0 when it does not. Per implementation kind:

  torch, torch-module:TARGET   torch and numpy only (a file target is imported from its path)
  everything else              the same calls through dropnorm's adapter (dropnorm must be installed)

Exact values: every array is written either as a list of Python floats (repr
round-trips, nan and inf defined at the top) or, above EMBED_AS_LIST elements,
as base64 of its zlib-compressed float64 bytes, so nothing is approximated or left out.

When the compared quantity is not one of the recorded results (a check of a
derived value, or a predicate such as "the constructor raised"), the script
replays the calls and compares every recorded result and error with what the
run saw: the same behaviour means the same failure (exit 1); a different one
means the case no longer behaves as it did when it failed (exit 0: rerun the
test to judge it).
"""
from __future__ import annotations

import base64
import inspect
import zlib

import numpy as np

EMBED_AS_LIST = 64  # elements: larger arrays are embedded as base64 float64 bytes
OUTPUT_FIELDS = ("y", "dx", "dweight", "dbias", "x_after")
STATE_FIELDS = ("weight", "bias", "running_mean", "running_var")
OUTPUT_METHODS = ("forward", "forward_backward", "forward_in", "output_format", "inplace_autograd",
                  "forward_backward_deterministic", "vmap_forward", "functional_forward")  # the calls whose result is an Output


def array_code(a) -> str:
    """Exact Python for a float64 array."""
    a = np.asarray(a, dtype=np.float64)
    if a.size <= EMBED_AS_LIST:
        return f"np.array({a.tolist()!r}, dtype=np.float64).reshape({a.shape!r})"
    data = base64.b64encode(zlib.compress(np.ascontiguousarray(a).tobytes(), 9)).decode()
    return f"arr({data!r}, {a.shape!r})"


def value_code(v) -> str:
    if isinstance(v, np.ndarray):
        return array_code(v)
    if isinstance(v, float) and not np.isfinite(v):
        return repr(v)  # nan, inf, -inf: defined at the top of the script
    return repr(v)


def abbreviated(script: str, limit: int = 8000) -> str:
    """The script for a page or a console: embedded arrays shortened to their shape, then cut at
    `limit` characters; the file holds it whole."""
    import re
    short = re.sub(r"arr\('([A-Za-z0-9+/=]{80,})', (\([0-9, ]*\))\)",
                   lambda m: f"arr('<{len(m.group(1))} characters of base64>', {m.group(2)})", script)
    if len(short) <= limit:
        return short
    # the head (what is imported and reproduced) and the tail (the case itself: layers, calls, checks); the
    # runtime helpers in between are what gets left out
    head = short[:limit // 3].rsplit("\n", 1)[0]
    tail = short[-(2 * limit // 3):].split("\n", 1)[-1]
    return (head + f"\n# ... ({len(short) - len(head) - len(tail)} characters of runtime helpers left out; "
            f"{len(script)} characters in all: the repro file holds it whole)\n" + tail)


def _locate(calls, got) -> tuple[int, str] | None:
    """The latest call whose recorded result holds `got` (by value), and the field."""
    got = np.asarray(got, dtype=np.float64)
    for i in range(len(calls) - 1, -1, -1):
        c = calls[i]
        r = c.result
        fields = []
        if c.method in OUTPUT_METHODS and r is not None:
            fields = [(f, getattr(r, f, None)) for f in OUTPUT_FIELDS]
        elif c.method == "state" and isinstance(r, dict):
            fields = [(f, r.get(f)) for f in STATE_FIELDS]
        for name, value in fields:
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape == got.shape and np.array_equal(value, got, equal_nan=True):
                return i, name
    return None


def _result_code(call) -> str | None:
    """What the replay compares for a call in the predicate mode: its recorded result."""
    r = call.result
    if call.method in OUTPUT_METHODS and r is not None:
        skip = ("y",) if isinstance(r.extra.get("forward_error"), str) else ()  # no output where the forward raised
        fields = [f"{f!r}: {array_code(getattr(r, f))}" for f in OUTPUT_FIELDS
                  if getattr(r, f, None) is not None and f not in skip]
        # issue 24: what those calls observe besides values (a memory format; which call raised)
        fields += [f"{k!r}: {r.extra[k]!r}" for k in ("format",) if isinstance(r.extra.get(k), str)]
        fields += [f"{k!r}: {r.extra[k].split(':', 1)[0]!r}" for k in ("forward_error", "backward_error")
                   if isinstance(r.extra.get(k), str)]
        buffers = r.extra.get("buffers")
        if isinstance(buffers, dict):  # functional_forward: the buffers passed in, after the call
            fields += [f"{'passed_' + k!r}: {value_code(v)}" for k, v in buffers.items()]
        return "{" + ", ".join(fields) + "}"
    if call.method == "state_keys" and r is not None:
        return repr({"keys": " ".join(r)})
    if call.method == "state" and isinstance(r, dict):
        return "{" + ", ".join(f"{f!r}: {value_code(r[f])}" for f in STATE_FIELDS + ("num_batches_tracked",)
                               if r.get(f) is not None) + "}"
    if call.method == "dtypes" and isinstance(r, dict):
        return repr({k: str(v) for k, v in r.items()})
    return None


def _call_code(call) -> str:
    """One traced call as a line of the script's small runtime (see _TORCH_RUNTIME / _ADAPTER_RUNTIME)."""
    a = call.args
    n = call.layer
    if call.method == "seed":
        return f"seed({a['seed']!r})"
    if call.method == "construct":
        kwargs = {k: v for k, v in a.items() if k != "factory"}
        return f"L[{n}] = construct({call.kind!r}, {a['factory']!r}, {kwargs!r})"
    if call.method == "train":
        return f"L[{n}].train({a['mode']!r})"
    if call.method == "forward":
        return f"forward(L[{n}], {array_code(a['x'])}, {a['dtype']!r}, {a['layout']!r})"
    if call.method == "forward_backward":
        return (f"forward_backward(L[{n}], {array_code(a['x'])}, {array_code(a['dy'])}, {a['dtype']!r}, "
                f"{a['layout']!r})")
    if call.method == "state":
        return f"state(L[{n}])"
    if call.method == "load":
        return f"load(L[{n}], {{{', '.join(f'{k!r}: {value_code(v)}' for k, v in a.items())}}})"
    if call.method == "to":
        return f"to(L[{n}], {a['dtype']!r})"
    if call.method == "roundtrip":
        return f"L[{call.result}] = roundtrip(L[{n}])"
    if call.method == "gradcheck":
        return f"gradcheck(L[{n}], {array_code(a['x'])}, {a['second_order']!r})"
    if call.method in ("reset_running_stats", "reset_parameters"):
        return f"{call.method}(L[{n}])"
    if call.method == "load_state":
        values = ", ".join(f"{k!r}: {value_code(v)}" for k, v in a["values"].items())
        return f"load_state(L[{n}], {{{values}}}, {a['legacy']!r})"
    if call.method == "forward_in":
        return f"forward_in(L[{n}], {array_code(a['x'])}, {a['context']!r}, {a['dtype']!r})"
    if call.method == "convert_sync":
        return f"L[{call.result}] = convert_sync(L[{n}])"
    if call.method == "load_checkpoint":
        values = ", ".join(f"{k!r}: {value_code(v)}" for k, v in a["values"].items())
        return f"load_checkpoint(L[{n}], {{{values}}}, {a['form']!r})"
    if call.method == "copy_layer":
        return f"L[{call.result}] = copy_layer(L[{n}], {a['how']!r})"
    if call.method == "dtypes":
        return f"dtypes(L[{n}])"
    # issue 24
    if call.method == "state_keys":
        return f"state_keys(L[{n}])"
    if call.method == "output_format":
        return f"output_format(L[{n}], {array_code(a['x'])}, {a['dtype']!r}, {a['layout']!r})"
    if call.method == "set_tracking":
        return f"set_tracking(L[{n}], {a['mode']!r})"
    if call.method == "inplace_autograd":
        return f"inplace_autograd(L[{n}], {array_code(a['x'])}, {a['how']!r}, {a['dtype']!r})"
    if call.method == "forward_backward_deterministic":
        return f"forward_backward_deterministic(L[{n}], {array_code(a['x'])}, {array_code(a['dy'])}, {a['dtype']!r})"
    if call.method == "vmap_forward":
        return f"vmap_forward(L[{n}], {array_code(a['x'])}, {a['randomness']!r}, {a['dtype']!r})"
    if call.method == "replace_batch_norm":
        return f"replace_batch_norm(L[{n}])"
    if call.method == "functional_forward":
        return f"functional_forward(L[{n}], {array_code(a['x'])}, {a['dtype']!r})"
    raise ValueError(f"no reproduction for a traced call {call.method!r}")


def _torch_runtime(spec: str) -> str:
    from dropnorm.adapters import layouts
    from dropnorm.adapters.torch import nn as torch_nn
    if spec == "torch":
        namespace = "nn = torch.nn"
    else:
        target = spec.split(":", 1)[1]
        if target.endswith(".py"):
            namespace = ("import importlib.util\n"
                         f"_spec = importlib.util.spec_from_file_location('impl_under_test', {target!r})\n"
                         "nn = importlib.util.module_from_spec(_spec)\n_spec.loader.exec_module(nn)")
        else:
            namespace = f"import importlib\nnn = importlib.import_module({target!r})"
    helpers = "\n\n\n".join(inspect.getsource(f).rstrip() for f in (layouts.storage_permutation,
                                                                     torch_nn.make_tensor, torch_nn.to_numpy))
    return f"""import io

import torch

{namespace}
TORCH_DTYPES = {{'float64': torch.float64, 'float32': torch.float32, 'float16': torch.float16,
                'bfloat16': torch.bfloat16}}


{helpers}


def seed(s):
    torch.manual_seed(s)


def construct(kind, factory, kwargs):
    kwargs = dict(kwargs)
    dims = kwargs.pop('dims', None)
    if factory == 'batchnorm_momentum_tensor':
        kwargs['momentum'] = torch.tensor(kwargs['momentum'], dtype=torch.float64)
    return getattr(nn, kind)(**kwargs)


def forward(layer, x, dtype, layout):
    t = make_tensor(x, dtype, layout)
    with torch.no_grad():
        y = layer(t)
    return {{'y': to_numpy(y), 'x_after': to_numpy(t)}}


def forward_backward(layer, x, dy, dtype, layout):
    t = make_tensor(x, dtype, layout).detach().requires_grad_(True)
    for p in layer.parameters():
        p.grad = None
    y = layer(t)
    y.backward(make_tensor(dy, dtype, 'contiguous').to(y.dtype))
    w, b = getattr(layer, 'weight', None), getattr(layer, 'bias', None)
    return {{'y': to_numpy(y), 'x_after': to_numpy(t), 'dx': to_numpy(t.grad),
            'dweight': to_numpy(w.grad) if isinstance(w, torch.Tensor) else None,
            'dbias': to_numpy(b.grad) if isinstance(b, torch.Tensor) else None}}


def state(layer):
    out = {{k: to_numpy(getattr(layer, k, None)) if isinstance(getattr(layer, k, None), torch.Tensor) else None
           for k in ('weight', 'bias', 'running_mean', 'running_var')}}
    t = getattr(layer, 'num_batches_tracked', None)
    out['num_batches_tracked'] = int(t) if isinstance(t, torch.Tensor) else None
    return out


def load(layer, values):
    with torch.no_grad():
        for k, v in values.items():
            target = getattr(layer, k)
            target.copy_(torch.as_tensor(np.asarray(v)).to(target.dtype))


def to(layer, dtype):
    layer.to(TORCH_DTYPES[dtype])


def roundtrip(layer):
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = type(layer)(**KWARGS[id(layer)])
    KWARGS[id(fresh)] = KWARGS[id(layer)]
    floats = [v.dtype for v in layer.state_dict().values() if v.is_floating_point()]
    if floats:
        fresh.to(floats[0])
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    fresh.train(layer.training)
    return fresh


def reset_running_stats(layer):
    layer.reset_running_stats()


def reset_parameters(layer):
    layer.reset_parameters()


def load_state(layer, values, legacy):
    from collections import OrderedDict
    own = layer.state_dict()
    sd = OrderedDict((k, torch.as_tensor(np.asarray(v)).to(own[k].dtype if k in own else torch.float32))
                     for k, v in values.items())
    meta = OrderedDict((k, dict(v)) for k, v in getattr(own, '_metadata', {{}}).items())
    if legacy:
        meta[''] = dict(meta.get('', {{}}), version=1)
    sd._metadata = meta
    layer.load_state_dict(sd)


def forward_in(layer, x, context, dtype):
    t = make_tensor(x, dtype, 'contiguous').detach().requires_grad_(True)
    with {{'no_grad': torch.no_grad, 'inference_mode': torch.inference_mode}}[context]():
        y = layer(t)
    return {{'y': to_numpy(y), 'x_after': to_numpy(t)}}


def convert_sync(layer):
    fresh = nn.SyncBatchNorm.convert_sync_batchnorm(layer)
    KWARGS[id(fresh)] = KWARGS.get(id(layer))
    return fresh


def load_checkpoint(layer, values, form):
    from collections import OrderedDict
    own = layer.state_dict()
    sd = {{k: torch.as_tensor(np.asarray(v)).to(own[k].dtype if k in own else torch.float32)
          for k, v in values.items()}}
    if form == 'plain':  # a plain dict, as a dict comprehension over state_dict() gives: no _metadata
        layer.load_state_dict(sd)
        return
    sd = OrderedDict(sd)
    sd._metadata = OrderedDict((k, dict(v)) for k, v in getattr(own, '_metadata', {{}}).items())
    layer.load_state_dict(sd, strict=False)


def copy_layer(layer, how):
    import copy
    import pickle
    import sys
    sys.modules.setdefault(type(layer).__module__, nn)  # a class loaded from a file pickles by reference
    fresh = copy.deepcopy(layer) if how == 'deepcopy' else pickle.loads(pickle.dumps(layer))
    KWARGS[id(fresh)] = KWARGS.get(id(layer))
    return fresh


def dtypes(layer):
    names = {{v: k for k, v in TORCH_DTYPES.items()}}
    return {{k: names.get(t.dtype, str(t.dtype).replace('torch.', '')) for k in
            ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
            if isinstance(t := getattr(layer, k, None), torch.Tensor)}}


def state_keys(layer):
    return {{'keys': ' '.join(layer.state_dict().keys())}}


def output_format(layer, x, dtype, layout):
    t = make_tensor(x, dtype, layout)
    with torch.no_grad():
        y = layer(t)
    formats = {{4: torch.channels_last, 5: torch.channels_last_3d}}
    fmt = ('contiguous' if y.is_contiguous() else 'channels_last' if y.ndim in formats
           and y.is_contiguous(memory_format=formats[y.ndim]) else 'other')
    print('output strides', y.stride(), '->', fmt)
    return {{'y': to_numpy(y), 'x_after': to_numpy(t), 'format': fmt}}


def set_tracking(layer, mode):
    layer.track_running_stats = mode


def inplace_autograd(layer, x, how, dtype):
    t = make_tensor(x, dtype, 'contiguous').detach().requires_grad_(True)
    prepare = {{'leaf': lambda v: v, 'exp': torch.exp, 'tanh': torch.tanh, 'scaled': lambda v: v * 2}}[how]
    out = {{'x_after': to_numpy(t)}}
    try:
        y = layer(prepare(t))
    except Exception as e:
        print('forward raised', type(e).__name__, e)
        out['forward_error'] = type(e).__name__
        return out
    out['y'] = to_numpy(y)
    try:
        y.sum().backward()
        out['x_after'] = to_numpy(t)
        out['dx'] = to_numpy(t.grad) if t.grad is not None else np.zeros(t.shape)
    except Exception as e:
        print('backward raised', type(e).__name__, e)
        out['backward_error'] = type(e).__name__
    return out


def forward_backward_deterministic(layer, x, dy, dtype):
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return forward_backward(layer, x, dy, dtype, 'contiguous')
    finally:
        torch.use_deterministic_algorithms(before)


def vmap_forward(layer, x, randomness, dtype):
    t = make_tensor(x, dtype, 'contiguous')
    try:
        with torch.no_grad():
            y = torch.func.vmap(layer, randomness=randomness)(t)
    except Exception as e:
        print('vmap raised', type(e).__name__, e)
        return {{'x_after': to_numpy(t), 'forward_error': type(e).__name__}}
    return {{'y': to_numpy(y), 'x_after': to_numpy(t)}}


def replace_batch_norm(layer):
    torch.func.replace_all_batch_norm_modules_(layer)
    if not isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):  # the same patch on a compatible class
        for key in ('running_mean', 'running_var', 'num_batches_tracked'):
            if getattr(layer, key, None) is not None:
                setattr(layer, key, None)
        if hasattr(layer, 'track_running_stats'):
            layer.track_running_stats = False


def functional_forward(layer, x, dtype):
    t = make_tensor(x, dtype, 'contiguous')
    buffers = {{k: v.clone() for k, v in layer.named_buffers()}}
    with torch.no_grad():
        y = torch.func.functional_call(layer, {{**dict(layer.named_parameters()), **buffers}}, (t,))
    out = {{'y': to_numpy(y), 'x_after': to_numpy(t)}}
    out.update({{'passed_' + k: int(v) if k == 'num_batches_tracked' else to_numpy(v) for k, v in buffers.items()}})
    return out
"""


_ADAPTER_RUNTIME = """from dropnorm.adapters import load as load_impl

impl = load_impl({spec!r})


def seed(s):
    impl.seed(s)


def construct(kind, factory, kwargs):
    return getattr(impl, factory)(**kwargs)


def _output(out):
    return {{k: getattr(out, k) for k in ('y', 'dx', 'dweight', 'dbias', 'x_after') if getattr(out, k) is not None}}


def forward(layer, x, dtype, layout):
    return _output(layer.forward(x, dtype=dtype, layout=layout))


def forward_backward(layer, x, dy, dtype, layout):
    return _output(layer.forward_backward(x, dy, dtype=dtype, layout=layout))


def state(layer):
    return layer.state()


def load(layer, values):
    layer.load(**values)


def to(layer, dtype):
    layer.to(dtype)


def roundtrip(layer):
    return layer.roundtrip()


def gradcheck(layer, x, second_order):
    return layer.gradcheck(x, second_order=second_order)


def reset_running_stats(layer):
    layer.reset_running_stats()


def reset_parameters(layer):
    layer.reset_parameters()


def load_state(layer, values, legacy):
    layer.load_state(values, legacy=legacy)


def forward_in(layer, x, context, dtype):
    return _output(layer.forward_in(x, context=context, dtype=dtype))


def convert_sync(layer):
    return layer.convert_sync()


def load_checkpoint(layer, values, form):
    layer.load_checkpoint(values, form=form)


def copy_layer(layer, how):
    return layer.copy_layer(how)


def dtypes(layer):
    return layer.dtypes()


def state_keys(layer):
    return {{'keys': ' '.join(layer.state_keys())}}


def output_format(layer, x, dtype, layout):
    out = layer.output_format(x, dtype=dtype, layout=layout)
    return dict(_output(out), format=out.extra['format'])


def set_tracking(layer, mode):
    layer.set_tracking(mode)


def inplace_autograd(layer, x, how, dtype):
    out = layer.inplace_autograd(x, how=how, dtype=dtype)
    res = {{k: v for k, v in _output(out).items() if not (k == 'y' and out.extra['forward_error'])}}
    res.update({{k: out.extra[k].split(':', 1)[0] for k in ('forward_error', 'backward_error') if out.extra[k]}})
    return res


def forward_backward_deterministic(layer, x, dy, dtype):
    return _output(layer.forward_backward_deterministic(x, dy, dtype=dtype))


def vmap_forward(layer, x, randomness, dtype):
    out = layer.vmap_forward(x, randomness=randomness, dtype=dtype)
    if out.extra['forward_error']:
        return {{'x_after': out.x_after, 'forward_error': out.extra['forward_error'].split(':', 1)[0]}}
    return _output(out)


def replace_batch_norm(layer):
    layer.replace_batch_norm()


def functional_forward(layer, x, dtype):
    out = layer.functional_forward(x, dtype=dtype)
    return dict(_output(out), **{{'passed_' + k: v for k, v in out.extra['buffers'].items()}})
"""


def _is_torch(spec: str) -> bool:
    return spec == "torch" or spec.startswith("torch-module:")


def script(violation) -> str:
    """The standalone reproduction of a ClauseViolation (dropnorm.suite.checks)."""
    calls, spec = violation.calls, violation.impl_spec
    torch_kind = _is_torch(spec) and not any(c.method == "gradcheck" for c in calls)
    comp = violation.comparison or {"kind": "predicate"}
    located = _locate(calls, comp["got"]) if comp.get("kind") in ("close", "equal") else None
    first = violation.message.splitlines()[0] if violation.message else ""
    lines = ['#!/usr/bin/env python3',
             f'"""Reproduces {violation.clause}/{violation.condition} on {spec}.',
             "",
             f"{first}",
             "",
             'Exits 1 while the failure reproduces, 0 when it does not."""',
             "import base64",
             "import sys",
             "import zlib",
             "",
             "import numpy as np",
             "",
             "nan, inf = float('nan'), float('inf')",
             "",
             "",
             "def arr(data, shape):",
             "    return np.frombuffer(zlib.decompress(base64.b64decode(data)), dtype=np.float64).reshape(shape).copy()",
             "",
             ""]
    lines.append(_torch_runtime(spec) if torch_kind else _ADAPTER_RUNTIME.format(spec=spec))
    lines += ["", "L = {}  # the layers, numbered as in the trace", "KWARGS = {}", "seen = []", ""]
    head = len(lines)
    stop = located[0] if located is not None else len(calls) - 1
    for i, c in enumerate(calls[:stop + 1]):
        code = _call_code(c)
        if c.method == "construct" and torch_kind:
            kwargs = {k: v for k, v in c.args.items() if k not in ("factory", "dims")}
            code += f"\nKWARGS[id(L[{c.layer}])] = {kwargs!r}"
        if located is not None and i == stop:
            lines.append(f"result = {code}")
            break
        if c.error is not None:
            exc_type = c.error.split(":", 1)[0]
            lines += ["try:", "    " + code.replace("\n", "\n    "),
                      f"    seen.append(('{c.method} #{i}: raised {exc_type} in the failing run', None))",
                      "except Exception as e:",
                      f"    seen.append(('{c.method} #{i}: raised {exc_type} in the failing run', "
                      f"type(e).__name__ == {exc_type!r} or type(e).__name__))"]
            continue
        expected = _result_code(c) if located is None else None
        if expected is not None:
            lines.append(f"seen.append(('{c.method} #{i}', _same({code}, {expected})))")
        else:
            lines.append(code)
    if located is not None:
        field = located[1]
        lines += ["", f"observed = np.asarray(result[{field!r}], dtype=np.float64)",
                  f"expected = {array_code(comp['expected'])}"]
        if comp["kind"] == "close":
            lines += [f"tolerance = np.broadcast_to({array_code(comp['atol'])}, expected.shape)",
                      "err = np.abs(observed - expected)",
                      "bad = ~((err <= tolerance) | (observed == expected) | (np.isnan(observed) & np.isnan(expected)))"]
        else:
            lines += ["tolerance = np.zeros(expected.shape)",
                      "bad = ~((observed == expected) | (np.isnan(observed) & np.isnan(expected)))"]
        what = comp.get("what", "")
        lines += ["if observed.shape != expected.shape:",
                  "    print(f'REPRODUCED: observed shape {observed.shape}, expected {expected.shape}')",
                  "    sys.exit(1)",
                  f"print({violation.clause + '/' + violation.condition + ' [' + what + ']'!r})",
                  "print('observed:', observed)", "print('expected:', expected)", "print('tolerance:', tolerance)",
                  "if bad.any():",
                  "    i = tuple(int(j) for j in np.argwhere(bad)[0])",
                  "    print(f'REPRODUCED: {int(bad.sum())} of {bad.size} outside the tolerance; first at {i}: '",
                  "          f'observed {observed[i]!r}, expected {expected[i]!r} +- {tolerance[i]!r}')",
                  "    sys.exit(1)",
                  "print('not reproduced: every value is within the tolerance')",
                  "sys.exit(0)"]
    else:
        lines += ["", f"print({(violation.clause + '/' + violation.condition + ': ' + first)!r})",
                  "changed = [what for what, same in seen if same is not True]",
                  "if changed:",
                  "    print('not reproduced: the case behaves differently now:', '; '.join(changed))",
                  "    sys.exit(0)",
                  "print(f'REPRODUCED: all {len(seen)} recorded results and errors are the same as in the "
                  "failing run')",
                  "sys.exit(1)"]
    replay = ["def main():"] + ["    " + line if line else "" for line in
                                "\n".join(lines[head:]).replace("sys.exit(", "return (").splitlines()]
    tail = ["", "", "if __name__ == '__main__':", "    try:", "        code = main()",
            "    except Exception as e:  # the case no longer runs as it did: not the recorded failure",
            "        print(f'not reproduced: the replay raised {type(e).__name__}: {e}')", "        code = 0",
            "    sys.exit(code)"]
    return "\n".join(lines[:head] + ["", _SAME, ""] + replay + tail) + "\n"


_SAME = '''def _same(got, recorded):
    """Whether a replayed result equals the one the failing run recorded (bitwise; NaN equals NaN)."""
    for k, v in recorded.items():
        g = got.get(k) if isinstance(got, dict) else None
        if g is None:
            return f'{k} missing'
        if isinstance(v, (int, str)):
            if g != v:
                return f'{k} {g!r} != {v!r}'
            continue
        g = np.asarray(g, dtype=np.float64)
        if g.shape != v.shape or not np.array_equal(g, v, equal_nan=True):
            return f'{k} differs'
    return True
'''
