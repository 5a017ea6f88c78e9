"""The model checks: each MD-* clause of spec/clauses.toml ([[model_clause]]) on one model.

Every verdict goes through ModelAudit.check(ok, clause, condition, message, ...), the one place a
model clause can fail (the meta-test tests/test_model_audit.py reads the conditions from the calls).
Each check works on a deep copy: the user's model is never changed.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import tempfile
import time
import traceback
from dataclasses import dataclass, field

import torch
from torch import nn

from dropnorm.models import structure as st
from dropnorm.models import tolerances as tol

CHECKS = ("eval", "batch", "freeze", "fold", "export", "compile", "lowp", "shift", "mc")
CHECK_CLAUSES = {"eval": ("MD-EVAL-01", "MD-EVAL-02"), "batch": ("MD-BATCH-01",), "freeze": ("MD-FREEZE-01",),
                 "fold": ("MD-FOLD-01",), "export": ("MD-EXPORT-01",), "compile": ("MD-COMPILE-01",),
                 "lowp": ("MD-LOWP-01",), "shift": ("MD-SHIFT-01",), "mc": ("MD-MC-01",)}
MAX_BATCH = 16   # the smallest training batch size is searched in 1..MAX_BATCH


@dataclass
class Result:
    clause: str
    condition: str
    status: str            # pass, fail, warn (a SHOULD not met), skip, error, info
    message: str
    modules: tuple = ()    # the module paths it names (a failure: the offending ones)
    observed: object = None
    expected: object = None
    tolerance: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, ())} | {"modules": list(self.modules)}


def _flat(out) -> list:
    """The floating tensors of a model output (tensor, tuple, list, dict, nested)."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [t for t in (getattr(out, k, None) for k in ("logits", "last_hidden_state")) if isinstance(t, torch.Tensor)]


def _cast(xs, dtype):
    return tuple(x.to(dtype) if x.is_floating_point() else x for x in xs)


def resample(example: tuple, n: int, seed: int, keep: int = 0) -> tuple:
    """A batch of n samples like the example's: its first `keep` samples, then each a random example
    sample (float tensors: plus Gaussian noise of the example's standard deviation)."""
    g = torch.Generator().manual_seed(seed)
    n0 = example[0].shape[0]
    idx = torch.cat([torch.arange(min(keep, n0)), torch.randint(0, n0, (max(n - min(keep, n0), 0),), generator=g)])
    out = []
    for x in example:
        y = x[idx].clone()
        if x.is_floating_point():
            sd = float(x.float().std()) if x.numel() > 1 else 1.0
            noise = torch.randn(y.shape, generator=g, dtype=torch.float64).to(x.dtype) * (sd if sd > 0 else 1.0)
            y[min(keep, n0):] += noise[min(keep, n0):]
        out.append(y)
    return tuple(out)


def _max_abs(ts) -> float:
    return max((float(t.detach().double().abs().max()) for t in ts if t.numel()), default=0.0)


def _max_diff(a, b) -> float:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return math.inf
    return max((float((x.detach().double() - y.detach().double()).abs().max()) for x, y in zip(a, b) if x.numel()),
               default=0.0)


def _buffers(m) -> dict:
    return {k: v.detach().clone() for k, v in m.named_buffers()}


def _owner(name: str) -> str:
    return name.rpartition(".")[0] or "<root>"


def _changed(before: dict, after: dict) -> list:
    out = []
    for k, v in before.items():
        w = after.get(k)
        if w is None or w.shape != v.shape or w.dtype != v.dtype or not torch.equal(
                torch.nan_to_num(w.double(), nan=1.2345e300), torch.nan_to_num(v.double(), nan=1.2345e300)):
            out.append(k)
    return out


class _Tracer:
    """Forward hooks on every module: per call, in completion order (children before parents), the
    module's inputs and outputs (or sample `sample` of them) and whether the global RNG state moved."""

    def __init__(self, model, sample: int | None = None, rng: bool = False):
        self.records, self.handles, self.sample, self.rng, self.stack = [], [], sample, rng, []
        for name, m in model.named_modules():
            self.handles.append(m.register_forward_pre_hook(self._pre(name)))
            self.handles.append(m.register_forward_hook(self._post(name)))

    def _pick(self, ts):
        ts = _flat(ts)
        if self.sample is None:
            return [t.detach().clone() for t in ts]
        return [t[self.sample].detach().clone() for t in ts if t.dim() >= 1 and t.shape[0] > self.sample]

    def _pre(self, name):
        def hook(mod, args):
            self.stack.append((name, torch.get_rng_state() if self.rng else None))
        return hook

    def _post(self, name):
        def hook(mod, args, out):
            _, rng0 = self.stack.pop() if self.stack else (name, None)
            moved = self.rng and not torch.equal(rng0, torch.get_rng_state())
            self.records.append((name or "<root>", self._pick(args), self._pick(out), moved))
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def _first_divergence(r1, r2, rel=0.0) -> str | None:
    """The first module (completion order: innermost first) whose inputs agree in both runs but whose
    outputs do not."""
    for (n1, i1, o1, _), (n2, i2, o2, _) in zip(r1, r2):
        if n1 != n2:
            return None
        scale = _max_abs(i1 + o1) or 1.0
        if _max_diff(i1, i2) <= rel * scale and _max_diff(o1, o2) > rel * scale:
            return n1
    return None


def _loss(out):
    return sum((t.float() ** 2).mean() for t in _flat(out))


def _set_dropouts(model, training: bool):
    for m in model.modules():
        if st.is_dropout(m):
            m.train(training)


@dataclass
class ModelAudit:
    """One model's audit: the results of every check, the structure and the per-module table."""
    target: object
    checks: tuple = CHECKS
    seed: int = 0
    results: list = field(default_factory=list)
    structure: st.Structure = None
    timings: dict = field(default_factory=dict)
    min_batch: int | None = None
    anchor: dict | None = None
    notes: list = field(default_factory=list)

    # ---------------------------------------------------------- the sink
    def check(self, ok: bool, clause: str, condition: str, message: str, *, modules=(), observed=None,
              expected=None, tolerance=None) -> bool:
        from dropnorm.spec.models import model_clauses
        level = model_clauses()[clause].level
        status = "pass" if ok else ("fail" if level == "MUST" else "warn")
        self.results.append(Result(clause, condition, status, message, tuple(modules), observed, expected, tolerance))
        return ok

    def skip(self, clause, condition, reason):
        self.results.append(Result(clause, condition, "skip", reason))

    def error(self, clause, condition, message, modules=()):
        self.results.append(Result(clause, condition, "error", message, tuple(modules)))

    def info(self, clause, condition, message, modules=()):
        self.results.append(Result(clause, condition, "info", message, tuple(modules)))

    # ---------------------------------------------------------- helpers
    @property
    def model(self):
        return self.target.model

    @property
    def example(self):
        return self.target.example

    def copy(self, training=False):
        m = copy.deepcopy(self.model)
        m.train(training)
        return m

    def forward(self, m, xs, grad=False):
        ctx = contextlib.nullcontext() if grad else torch.no_grad()
        with ctx:
            return m(*xs)

    def train_batch(self, seed_offset=0) -> tuple:
        n = max(self.example[0].shape[0], self.min_batch or 2)
        return resample(self.example, n, self.seed + 101 + seed_offset, keep=n)

    def compute_anchor(self):
        """y32 (eager float32 eval), y64 (float64 eval of a deep copy), e32 and the output scale."""
        from dropnorm.models.target import TargetError
        m32 = self.copy()
        try:
            y32 = _flat(self.forward(m32, self.example))
        except Exception as e:
            raise TargetError(f"{self.target.spec}: the model in eval raised on its example input "
                              f"{[tuple(t.shape) for t in self.example]}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
        if not y32:
            raise TargetError(f"{self.target.spec}: the model's output holds no floating-point tensor to check")
        try:
            m64 = self.copy().double()
            y64 = _flat(self.forward(m64, _cast(self.example, torch.float64)))
        except Exception as e:
            self.notes.append(f"no float64 anchor: the model does not run in float64 ({type(e).__name__}: {e})")
            self.anchor = None
            return
        self.anchor = {"y32": y32, "y64": y64, "e32": _max_diff(y32, y64), "scale": _max_abs(y64)}

    # ---------------------------------------------------------- running
    def run(self):
        t0 = time.time()
        self.structure = st.analyse(self.model)
        self.compute_anchor()
        self.timings["structure"] = time.time() - t0
        for name in CHECKS:
            if name not in self.checks:
                for clause in CHECK_CLAUSES[name]:
                    self.skip(clause, "*", f"not requested ({'--compile' if name == 'compile' else '--checks'})")
                continue
            t = time.time()
            torch.manual_seed(self.seed)
            try:
                getattr(self, f"check_{name}")()
            except Exception as e:  # a check that could not run is an error of its clause, never a traceback
                tb = traceback.format_exc(limit=-2).strip().splitlines()[-1]
                for clause in CHECK_CLAUSES[name]:
                    self.error(clause, "*", f"the check raised {type(e).__name__}: {e} ({tb})")
            self.timings[name] = time.time() - t
        self.timings["total"] = time.time() - t0
        return self

    # ---------------------------------------------------------- MD-EVAL-01, MD-EVAL-02
    def check_eval(self):
        m = self.copy()
        xs = self.example
        before, flags = _buffers(m), {n: mod.training for n, mod in m.named_modules()}
        rng0 = torch.get_rng_state()
        tr1 = _Tracer(m, rng=True)
        torch.manual_seed(self.seed + 1)
        rng0 = torch.get_rng_state()
        out1 = _flat(self.forward(m, xs))
        rng1 = torch.get_rng_state()
        tr1.close()
        changed = _changed(before, _buffers(m))
        self.check(not changed, "MD-EVAL-02", "buffers",
                   "eval leaves every buffer unchanged" if not changed else
                   f"eval changed {len(changed)} buffer(s): {', '.join(changed[:8])}",
                   modules=sorted({_owner(k) for k in changed}), observed=changed[:8] or None, expected="unchanged")
        movers = [n for n, _, _, moved in tr1.records if moved]
        innermost = movers[:1]
        self.check(torch.equal(rng0, rng1), "MD-EVAL-02", "rng",
                   "eval leaves the global RNG state unchanged" if torch.equal(rng0, rng1) else
                   f"eval drew from the global RNG (first, innermost, in {innermost[0] if innermost else '?'})",
                   modules=innermost, observed="RNG state advanced" if not torch.equal(rng0, rng1) else None,
                   expected="RNG state unchanged")
        switched = [n or "<root>" for n, mod in m.named_modules() if mod.training != flags[n]]
        self.check(not switched, "MD-EVAL-02", "modes",
                   "eval leaves every module's training flag False" if not switched else
                   f"the forward switched {len(switched)} module(s) to training: {', '.join(switched[:8])}",
                   modules=switched[:8])
        # deterministic: a second call on a fresh copy, another global RNG state, the same input
        m2 = self.copy()
        tr2 = _Tracer(m2)
        torch.manual_seed(self.seed + 2)
        out2 = _flat(self.forward(m2, xs))
        tr2.close()
        same = len(out1) == len(out2) and all(torch.equal(a, b) or (torch.isnan(a) == torch.isnan(b)).all() and
                                              torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
                                              for a, b in zip(out1, out2))
        culprit = None if same else _first_divergence(tr1.records, tr2.records)
        self.check(same, "MD-EVAL-01", "deterministic",
                   "two eval calls on the same input give the same output bit for bit" if same else
                   f"two eval calls on the same input differ by {_max_diff(out1, out2):.3g} "
                   f"(first, innermost, in {culprit or '?'})",
                   modules=[culprit] if culprit else (), observed=_max_diff(out1, out2), expected=0.0)
        self.check_batch_independence()

    def check_batch_independence(self):
        n = max(self.example[0].shape[0], 4)
        a = resample(self.example, n, self.seed + 11, keep=self.example[0].shape[0])
        b = resample(self.example, n, self.seed + 12, keep=1)   # sample 0 kept, every other sample redrawn
        if self.anchor is not None:
            m, a, b = self.copy().double(), _cast(a, torch.float64), _cast(b, torch.float64)
            bound = tol.float64_bound(self.anchor["e32"], self.anchor["scale"])
            how = "float64"
        else:
            m = self.copy()
            bound = 2 * tol.float32_bound(0.0, _max_abs(_flat(self.forward(m, a))))
            how = "float32 (no float64 anchor)"
        ta, tb = _Tracer(m, sample=0), None
        torch.manual_seed(self.seed + 3)
        ya = _flat(self.forward(m, a))
        ta.close()
        tb = _Tracer(m, sample=0)
        torch.manual_seed(self.seed + 3)
        yb = _flat(self.forward(m, b))
        tb.close()
        ya0 = [t[0] for t in ya if t.dim() >= 1 and t.shape[0] == n]
        yb0 = [t[0] for t in yb if t.dim() >= 1 and t.shape[0] == n]
        if not ya0:
            self.skip("MD-EVAL-01", "batch-independent", "no output is batched along dim 0")
            return
        d = _max_diff(ya0, yb0)
        culprit = None if d <= bound else _first_divergence(ta.records, tb.records, rel=1e-9)
        self.check(d <= bound, "MD-EVAL-01", "batch-independent",
                   f"sample 0's eval output in two batches ({how}, batch {n}, the others redrawn): "
                   f"|difference| {d:.3g} {'<=' if d <= bound else '>'} bound {bound:.3g}"
                   + (f" (first, innermost, in {culprit})" if culprit else ""),
                   modules=[culprit] if culprit else (), observed=d, expected=0.0, tolerance=bound)

    # ---------------------------------------------------------- MD-BATCH-01
    def check_batch(self):
        bns = {n: mod for n, mod in self.model.named_modules() if st.is_bn(mod)}
        if not bns and not any(fn in ("batch_norm",) for _, fn in self.structure.functional):
            self.skip("MD-BATCH-01", "*", "no BatchNorm in the model")
            self.min_batch = 1
            return
        tried = {}
        for n in range(1, MAX_BATCH + 1):
            m = self.copy(training=True)
            seen, stack, failed_in = {}, [], []
            handles = []
            def pre(mod, args, name):
                stack.append(name)
                if st.is_bn(mod) and args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 2:
                    seen[name] = args[0].numel() // max(args[0].shape[1], 1)

            def post(mod, args, out):
                stack.pop()

            for name, mod in m.named_modules():
                handles.append(mod.register_forward_pre_hook(lambda mod, args, name=name: pre(mod, args, name)))
                handles.append(mod.register_forward_hook(post))
            xs = resample(self.example, n, self.seed + 20 + n, keep=n)
            torch.manual_seed(self.seed)
            try:
                out = _flat(self.forward(m, xs))
                err = None
            except Exception as e:
                err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                failed_in = [x for x in stack if x and st.is_bn(dict(m.named_modules()).get(x))][-1:] or stack[-1:]
                out = None
            for h in handles:
                h.remove()
            one = sorted(k for k, v in seen.items() if v <= 1)
            tried[n] = (err, failed_in, one)
            if err is None and one:
                self.check(False, "MD-BATCH-01", "one-value-raises",
                           f"training at batch {n} gives {', '.join(one[:4])} one value per channel and returns an "
                           "output instead of raising (the batch statistics are undefined; the output is beta)",
                           modules=one, observed=f"output at batch {n}", expected="ValueError")
                return
            if err is None:
                finite = all(bool(torch.isfinite(t).all()) for t in out)
                self.min_batch = n
                limit = tried.get(n - 1)
                self.check(True, "MD-BATCH-01", "one-value-raises",
                           f"every batch size below {n} raised naming its cause" if n > 1 else
                           "batch size 1 trains (no BatchNorm sees one value per channel)",
                           modules=limit[1] if limit else ())
                self.check(finite, "MD-BATCH-01", "min-batch-runs",
                           f"the smallest training batch size is {n}" + (
                               f" (batch {n - 1}: {limit[0][:120]} in {', '.join(limit[1]) or '?'})" if limit else "")
                           + ("" if finite else "; its output is not finite"),
                           modules=limit[1] if limit else (), observed=n)
                return
        self.check(False, "MD-BATCH-01", "min-batch-runs",
                   f"no batch size up to {MAX_BATCH} trains: {tried[MAX_BATCH][0]}", modules=tried[MAX_BATCH][1])

    # ---------------------------------------------------------- MD-FREEZE-01
    def _freeze_step(self, recipe):
        """Apply the recipe to a copy, then model.train() and one optimiser step. Returns (frozen BN paths,
        frozen parameter names, moved: {bn path: [what moved]}, params moved)."""
        m = self.copy(training=False)
        named = recipe(m)
        bns = {n: mod for n, mod in m.named_modules() if st.is_bn(mod)}
        if named is not None:
            frozen_bns = [n for n in named if n in bns]
        else:   # frozen = BatchNorms whose parameters all stopped requiring gradients
            frozen_bns = [n for n, mod in bns.items() if list(mod.parameters()) and
                          not any(p.requires_grad for p in mod.parameters())]
        frozen_params = [n for n, p in m.named_parameters() if not p.requires_grad]
        before = {n: p.detach().clone() for n, p in m.named_parameters()}
        buf = _buffers(m)
        m.train()
        trainable = [p for p in m.parameters() if p.requires_grad]
        opt = torch.optim.SGD(trainable, lr=0.1) if trainable else None
        torch.manual_seed(self.seed + 5)
        out = self.forward(m, self.train_batch(), grad=bool(trainable))
        if opt is not None:
            loss = _loss(out)
            if loss.requires_grad:
                opt.zero_grad()
                loss.backward()
                opt.step()
        after = _buffers(m)
        moved = {}
        for n in frozen_bns:
            keys = [k for k in buf if _owner(k) == n]
            what = [k.rpartition(".")[2] for k in _changed({k: buf[k] for k in keys}, after)]
            if what:
                moved[n] = what
        params_moved = [n for n in frozen_params if not torch.equal(before[n], dict(m.named_parameters())[n].detach())]
        return frozen_bns, frozen_params, moved, params_moved

    def check_freeze(self):
        from dropnorm.models.freeze import freeze_batchnorm, recipes
        if not self.structure.bns:
            self.skip("MD-FREEZE-01", "*", "no BatchNorm module to freeze")
            return
        # the common recipes users follow: what each leaves moving on this model (information, not a verdict)
        for name, recipe in recipes().items():
            frozen, _, moved, _ = self._freeze_step(recipe)
            self.info("MD-FREEZE-01", f"recipe-{name}",
                      f"common recipe '{name}' then model.train() and one step: {len(moved)} of {len(frozen)} "
                      "'frozen' BatchNorms still move" + (f" ({', '.join(list(moved)[:4])}"
                                                          f"{', ...' if len(moved) > 4 else ''})" if moved else ""),
                      modules=sorted(moved))
        judged = [("dropnorm.models.freeze_batchnorm", freeze_batchnorm)]
        if "freeze" in self.target.options:
            judged.append(("the model's own freeze recipe", self.target.options["freeze"]))
        for label, recipe in judged:
            frozen, fparams, moved, pmoved = self._freeze_step(recipe)
            stats = {n: w for n, w in moved.items() if any(x in ("running_mean", "running_var") for x in w)}
            counters = {n: w for n, w in moved.items() if "num_batches_tracked" in w}
            self.check(not pmoved, "MD-FREEZE-01", "frozen-params",
                       f"{label}: {len(fparams)} frozen parameters unchanged by model.train() and one SGD step"
                       if not pmoved else f"{label}: frozen parameters changed: {', '.join(pmoved[:6])}",
                       modules=sorted({_owner(p) for p in pmoved}))
            self.check(not stats, "MD-FREEZE-01", "frozen-stats",
                       f"{label}: the running statistics of all {len(frozen)} frozen BatchNorms unchanged" if not stats
                       else f"{label}: {len(stats)} of {len(frozen)} frozen BatchNorms still update their running "
                            f"statistics after model.train(): {', '.join(list(stats)[:6])}"
                            f"{', ...' if len(stats) > 6 else ''}",
                       modules=sorted(stats), observed=f"{len(stats)} moved", expected="0 moved")
            self.check(not counters, "MD-FREEZE-01", "frozen-counters",
                       f"{label}: num_batches_tracked of the frozen BatchNorms unchanged" if not counters else
                       f"{label}: {len(counters)} frozen BatchNorms still count batches: "
                       f"{', '.join(list(counters)[:6])}", modules=sorted(counters))

    # ---------------------------------------------------------- MD-FOLD-01
    def _compare_to_anchor(self, clause, condition, label, ys, modules=()):
        a = self.anchor
        bound = tol.float32_bound(a["e32"], a["scale"])
        err = _max_diff(ys, a["y64"])
        direct = _max_diff(ys, a["y32"])
        self.check(err <= bound, clause, condition,
                   f"{label}: |output - float64 eager| {err:.3g} {'<=' if err <= bound else '>'} bound {bound:.3g} "
                   f"(eager float32's own error {a['e32']:.3g}; |output - eager float32| {direct:.3g})",
                   modules=modules, observed=err, expected=0.0, tolerance=bound)
        return err <= bound

    def check_fold(self):
        s = self.structure
        if not s.pairs:
            self.skip("MD-FOLD-01", "*", "no Linear/Conv/ConvTranspose -> BatchNorm pair to fold")
            return
        if self.anchor is None:
            self.skip("MD-FOLD-01", "*", "no float64 anchor (the model does not run in float64)")
            return
        from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

        def fold(pairs):
            m = self.copy()
            mods = dict(m.named_modules())
            for a, b, _ in pairs:
                layer, bn = mods[a], mods[b]
                if isinstance(layer, nn.Linear):
                    fused = fuse_linear_bn_eval(layer, bn)
                else:
                    fused = fuse_conv_bn_eval(layer, bn, transpose=isinstance(layer, nn.modules.conv._ConvTransposeNd))
                for path, new in ((a, fused), (b, nn.Identity())):
                    parent, _, child = path.rpartition(".")
                    setattr(m.get_submodule(parent) if parent else m, child, new)
            return m

        ok = True
        try:
            folded = fold(s.pairs)
            ys = _flat(self.forward(folded, self.example))
            ok = self._compare_to_anchor("MD-FOLD-01", "fusion-utils",
                                         f"torch.nn.utils.fusion on {len(s.pairs)} pair(s)", ys)
        except Exception as e:
            self.error("MD-FOLD-01", "fusion-utils", f"folding raised {type(e).__name__}: {e}")
        if not ok:   # name every pair that alone breaks the output
            bad = []
            for pair in s.pairs:
                ys = _flat(self.forward(fold([pair]), self.example))
                if _max_diff(ys, self.anchor["y64"]) > tol.float32_bound(self.anchor["e32"], self.anchor["scale"]):
                    bad.append(f"{pair[0]} -> {pair[1]}")
            self.results[-1].modules = tuple(bad)
            self.results[-1].message += f"; pairs that alone break it: {', '.join(bad) or 'none alone'}"
        conv_pairs = [p for p in s.pairs if isinstance(self.model.get_submodule(p[0]), (nn.Conv1d, nn.Conv2d,
                                                                                          nn.Conv3d))]
        if not s.traced:
            self.skip("MD-FOLD-01", "fx-fuse", f"the model does not trace with torch.fx ({s.trace_error})")
        elif not conv_pairs:
            self.skip("MD-FOLD-01", "fx-fuse", "no ConvNd -> BatchNorm pair (the fx fuser's only pattern)")
        else:
            from torch.fx.experimental.optimization import fuse
            fused = fuse(self.copy())
            left = [n for n, mod in fused.named_modules() if st.is_bn(mod)]
            ys = _flat(self.forward(fused, self.example))
            self._compare_to_anchor("MD-FOLD-01", "fx-fuse",
                                    f"torch.fx.experimental.optimization.fuse ({len(left)} BatchNorm(s) left unfused)",
                                    ys)

    # ---------------------------------------------------------- MD-EXPORT-01
    def check_export(self):
        if self.anchor is None:
            self.skip("MD-EXPORT-01", "*", "no float64 anchor (the model does not run in float64)")
            return
        try:
            import onnxruntime as ort
        except ImportError:
            self.skip("MD-EXPORT-01", "onnxruntime", "onnxruntime is not installed (pip install 'dropnorm[onnx]')")
            return
        m = self.copy()
        with tempfile.TemporaryDirectory() as d:
            path = f"{d}/model.onnx"
            import logging
            quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.onnx._internal.exporter._registration")]
            levels = [q.level for q in quiet]
            try:
                for q in quiet:
                    q.setLevel(logging.ERROR)
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    torch.onnx.export(m, self.example, path, dynamo=True, verbose=False)
            except Exception as e:
                self.error("MD-EXPORT-01", "onnxruntime",
                           f"torch.onnx.export(dynamo=True) raised {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                return
            finally:
                for q, lv in zip(quiet, levels):
                    q.setLevel(lv)
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            feeds = {i.name: x.numpy() for i, x in zip(sess.get_inputs(), self.example)}
            ys = [torch.from_numpy(y) for y in sess.run(None, feeds)]
        ys = [y for y in ys if y.is_floating_point()]
        self._compare_to_anchor("MD-EXPORT-01", "onnxruntime", "torch.export -> ONNX Runtime, eval", ys)

    # ---------------------------------------------------------- MD-COMPILE-01
    def check_compile(self):
        if self.anchor is None:
            self.skip("MD-COMPILE-01", "*", "no float64 anchor (the model does not run in float64)")
            return
        torch._dynamo.reset()
        m = torch.compile(self.copy())
        ys = _flat(self.forward(m, self.example))
        self._compare_to_anchor("MD-COMPILE-01", "eval-output", "torch.compile, eval", ys)
        # one training step (BatchNorms in training, dropout off so that both draw nothing): running statistics
        xs = self.train_batch()
        steps, mags, counts = {}, {}, {}
        for label, factory in (("eager", lambda: self.copy(training=True)),
                               ("float64", lambda: self.copy(training=True).double()),
                               ("compiled", lambda: self.copy(training=True))):
            mm = factory()
            _set_dropouts(mm, False)
            handles = self._magnitude_hooks(mm, mags, counts) if label == "float64" else []
            run = torch.compile(mm) if label == "compiled" else mm
            self.forward(run, _cast(xs, torch.float64) if label == "float64" else xs)
            for h in handles:
                h.remove()
            steps[label] = {k: v for k, v in _buffers(mm).items() if k.endswith(("running_mean", "running_var"))}
        if steps["float64"]:
            self._stats_close("MD-COMPILE-01", "train-stats", "torch.compile, one training step (float32 "
                              "accumulation allowed, tolerances.compile_train_bound)", steps["compiled"],
                              steps["eager"], steps["float64"], torch.float32, mags, counts or {"": 1})
        else:
            self.skip("MD-COMPILE-01", "train-stats", "no BatchNorm running statistics")

    @staticmethod
    def _magnitude_hooks(model, mags, counts):
        """Pre-hooks on every BatchNorm: the momentum-weighted magnitude each running statistic averages
        (mean |x|; 2 mean x^2 for the variance, largest channel) and the values per channel n."""
        handles = []
        for name, mod in model.named_modules():
            if st.is_bn(mod):
                def hook(mod, args, name=name):
                    v = args[0].detach().transpose(0, 1).reshape(args[0].shape[1], -1)
                    mom = mod.momentum if mod.momentum is not None else 1.0
                    mags[f"{name}.running_mean".lstrip(".")] = mom * float(v.abs().mean(1).max())
                    mags[f"{name}.running_var".lstrip(".")] = 2 * mom * float((v ** 2).mean(1).max())
                    counts[f"{name}.running_mean".lstrip(".")] = counts[f"{name}.running_var".lstrip(".")] = v.shape[1]
                handles.append(mod.register_forward_pre_hook(hook))
        return handles

    def _stats_close(self, clause, condition, label, got, eager, ref64, dtype, magnitude=None, counts=None):
        worst, names = 0.0, []
        n_max = max(counts.values()) if counts else 1
        for k, v64 in ref64.items():
            e32 = float((eager[k].double() - v64).abs().max()) if v64.numel() else 0.0
            mag = magnitude.get(k, 0.0) if magnitude else 0.0
            scale = float(v64.abs().max()) if v64.numel() else 0.0
            bound = (tol.lowp_bound(e32, mag, dtype) if dtype != torch.float32 else
                     tol.compile_train_bound(e32, mag, n_max, counts.get(k, 1), scale) if counts else
                     tol.float32_bound(e32, scale))
            if k not in got or got[k].shape != v64.shape:   # a statistic the step lost or reshaped
                names.append(k)
                worst = math.inf
                continue
            err = float((got[k].double() - v64).abs().max()) if v64.numel() else 0.0
            if not err <= bound:
                names.append(k)
            worst = max(worst, err / bound if bound > 0 else (math.inf if err > 0 else 0.0))
        self.check(not names, clause, condition,
                   f"{label}: running statistics within the derived bound of the float64 step (worst "
                   f"{worst:.3g} of its bound)" if not names else
                   f"{label}: {len(names)} running statistics outside the bound (worst {worst:.3g}x): "
                   f"{', '.join(names[:6])}", modules=sorted({_owner(k) for k in names}), observed=worst,
                   expected="<= 1 x bound")

    # ---------------------------------------------------------- MD-LOWP-01
    def check_lowp(self):
        if not self.structure.bns:
            self.skip("MD-LOWP-01", "*", "no BatchNorm module")
            return
        xs = self.train_batch(1)
        stats = lambda mm: {k: v for k, v in _buffers(mm).items() if k.endswith(("running_mean", "running_var"))}
        mags = {}

        def step(kind):
            mm = self.copy(training=True)
            _set_dropouts(mm, False)
            x = xs
            handles = []
            if kind == "float64":   # what each statistic averages, for the bfloat16 floor
                mm, x = mm.double(), _cast(xs, torch.float64)
                handles = self._magnitude_hooks(mm, mags, {})
            ctx = contextlib.nullcontext()
            if kind == "channels_last":
                if x[0].dim() not in (4, 5):
                    return None
                fmt = torch.channels_last if x[0].dim() == 4 else torch.channels_last_3d
                mm = mm.to(memory_format=fmt)
                x = tuple(t.contiguous(memory_format=fmt) if t.dim() == x[0].dim() else t for t in x)
            if kind == "bfloat16":
                ctx = torch.autocast("cpu", dtype=torch.bfloat16)
            torch.manual_seed(self.seed + 7)
            with ctx:
                self.forward(mm, x)
            for h in handles:
                h.remove()
            return stats(mm)

        base = step("float32")
        try:
            ref = step("float64")
        except Exception as e:   # judged on dtype and finiteness only
            ref = None
            ref_error = f"the float64 step raised {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        for kind, cond in (("channels_last", "channels-last"), ("bfloat16", "autocast-bf16")):
            try:
                got = step(kind)
            except Exception as e:   # an exception where a training step was due: that mode's conditions
                for part in ("dtype", "finite", "stats"):
                    self.error("MD-LOWP-01", f"{cond}-{part}", f"the {kind} training step raised {type(e).__name__}: "
                               f"{str(e).splitlines()[0][:160] if str(e) else ''}")
                continue
            if got is None:
                self.skip("MD-LOWP-01", f"{cond}-dtype", "the input is not 4-D or 5-D: no channels_last layout")
                self.skip("MD-LOWP-01", f"{cond}-finite", "the input is not 4-D or 5-D")
                self.skip("MD-LOWP-01", f"{cond}-stats", "the input is not 4-D or 5-D")
                continue
            bad_dtype = [k for k, v in got.items() if v.dtype not in (torch.float32, torch.float64)
                         or v.dtype != base[k].dtype]
            self.check(not bad_dtype, "MD-LOWP-01", f"{cond}-dtype",
                       f"{kind}: every running statistic keeps its float32 dtype" if not bad_dtype else
                       f"{kind}: running statistics changed dtype: " + ", ".join(
                           f"{k} {got[k].dtype}" for k in bad_dtype[:6]),
                       modules=sorted({_owner(k) for k in bad_dtype}), observed=[str(got[k].dtype) for k in bad_dtype[:3]]
                       or None, expected="torch.float32")
            nonfinite = [k for k, v in got.items() if not bool(torch.isfinite(v.double()).all())]
            self.check(not nonfinite, "MD-LOWP-01", f"{cond}-finite",
                       f"{kind}: every running statistic finite" if not nonfinite else
                       f"{kind}: non-finite running statistics: {', '.join(nonfinite[:6])}",
                       modules=sorted({_owner(k) for k in nonfinite}))
            dtype = torch.bfloat16 if kind == "bfloat16" else torch.float32
            if ref is None:
                self.skip("MD-LOWP-01", f"{cond}-stats", f"no float64 reference step: {ref_error}")
                continue
            self._stats_close("MD-LOWP-01", f"{cond}-stats", f"{kind} training step", got, base, ref, dtype, mags)

    # ---------------------------------------------------------- MD-SHIFT-01
    def check_shift(self):
        pairs = self.structure.dropout_to_bn
        if not pairs:
            self.skip("MD-SHIFT-01", "variance-shift", "no dropout feeds a BatchNorm (directly or through one "
                                                       "Linear/Conv layer)")
            return
        targets = sorted({b for _, b in pairs})
        m = self.copy(training=True)
        bns = {n: mod for n, mod in m.named_modules() if n in targets}
        for mod in bns.values():
            mod.reset_running_stats()
            mod.momentum = None          # the cumulative average over the steps
        steps, n_train = 8, {}
        for i in range(steps):
            xs = self.train_batch(30 + i)
            torch.manual_seed(self.seed + 40 + i)
            seen = []
            hs = [mod.register_forward_pre_hook(lambda mod, a, name=name: seen.append(
                (name, a[0].numel() // a[0].shape[1]))) for name, mod in bns.items()]
            self.forward(m, xs)
            for h in hs:
                h.remove()
            for name, k in seen:
                n_train[name] = n_train.get(name, 0) + k
        m.eval()
        var_eval, n_eval = {}, {}
        hs = []
        for name, mod in bns.items():
            def hook(mod, a, name=name):
                v = a[0].detach().double().transpose(0, 1).reshape(a[0].shape[1], -1)
                var_eval[name] = v.var(1, unbiased=True)
                n_eval[name] = v.shape[1]
            hs.append(mod.register_forward_pre_hook(hook))
        self.forward(m, resample(self.example, max(self.example[0].shape[0], 64), self.seed + 50, keep=0))
        for h in hs:
            h.remove()
        for name, mod in bns.items():
            if name not in var_eval:
                continue
            rv = mod.running_var.detach().double()
            ratio = rv / var_eval[name].clamp_min(1e-300)
            live = var_eval[name] > 1e-12
            shift = float((ratio[live] - 1).abs().max()) if bool(live.any()) else 0.0
            thr = tol.shift_threshold(n_train.get(name, 2) // steps, n_eval[name])
            src = [a for a, b in pairs if b == name]
            self.check(shift <= thr, "MD-SHIFT-01", "variance-shift",
                       f"{', '.join(src)} feeds {name}: running variance (dropout on) / eval variance (dropout off) "
                       f"departs from 1 by up to {shift:.3g} (sampling threshold {thr:.3g}); the eval BatchNorm "
                       "normalises with a variance its eval input does not have (Li et al., CVPR 2019)",
                       modules=[name], observed=shift, expected=0.0, tolerance=thr)

    # ---------------------------------------------------------- MD-MC-01
    def check_mc(self):
        s = self.structure
        m = self.copy()
        _set_dropouts(m, True)    # MC dropout: every dropout module sampling, everything else in eval
        before = _buffers(m)
        torch.manual_seed(self.seed + 60)
        y1 = _flat(self.forward(m, self.example))
        y2 = _flat(self.forward(m, self.example))
        changed = _changed(before, _buffers(m))
        self.check(not changed, "MD-MC-01", "stats-frozen",
                   "MC dropout (dropout modules in training, the rest in eval): every buffer unchanged" if not changed
                   else f"MC dropout changed {len(changed)} buffer(s): {', '.join(changed[:6])}",
                   modules=sorted({_owner(k) for k in changed}))
        live = [n for n in s.dropouts if getattr(self.model.get_submodule(n), "p", 0) not in (0, 0.0)]
        if not live:
            self.skip("MD-MC-01", "samples-vary", "no dropout module with p > 0" + (
                f" (functional dropout, which the module recipe cannot switch: "
                f"{', '.join(f'{f} in {w or chr(60) + chr(114) + chr(111) + chr(111) + chr(116) + chr(62)}' for w, f in s.functional if 'dropout' in f)})"
                if any('dropout' in f for _, f in s.functional) else ""))
            return
        vary = _max_diff(y1, y2) > 0
        self.check(vary, "MD-MC-01", "samples-vary",
                   f"two MC-dropout samples differ (max |difference| {_max_diff(y1, y2):.3g})" if vary else
                   f"two MC-dropout samples are identical although {len(live)} dropout module(s) with p > 0 were "
                   f"switched to training ({', '.join(live[:4])}): the model does not use them as it runs",
                   modules=live[:4] if not vary else (), observed=_max_diff(y1, y2), expected="> 0")


def module_table(audit: ModelAudit) -> list:
    """One row per Dropout/BatchNorm-family module: path, type, and per clause the status its checks gave it
    (fail where a result names it, pass where the clause's checks ran on a model holding it)."""
    rows = []
    s = audit.structure
    for path, typ in s.modules.items():
        fam = "batchnorm" if path in s.bns else "dropout"
        statuses = {}
        for r in audit.results:
            applies = {"MD-EVAL-01": True, "MD-EVAL-02": True, "MD-MC-01": True, "MD-BATCH-01": fam == "batchnorm",
                       "MD-FREEZE-01": fam == "batchnorm", "MD-LOWP-01": fam == "batchnorm",
                       "MD-FOLD-01": any(path in (a, b) for a, b, _ in s.pairs),
                       "MD-SHIFT-01": any(path in (a, b) for a, b in s.dropout_to_bn),
                       "MD-EXPORT-01": True, "MD-COMPILE-01": True}.get(r.clause, True)
            if not applies or r.status == "info":
                continue
            named = path in r.modules
            status = r.status if (named or r.status not in ("fail", "warn")) else "pass"
            if r.status in ("fail", "warn") and not r.modules:
                status = r.status    # a failure that names no module concerns all
            prev = statuses.get(r.clause)
            statuses[r.clause] = _worse(prev, status)
        rows.append({"module": path, "type": typ, "checks": statuses})
    return rows


ORDER = ("fail", "error", "warn", "pass", "skip", "info")


def _worse(a, b):
    if a is None:
        return b
    return a if ORDER.index(a) <= ORDER.index(b) else b
