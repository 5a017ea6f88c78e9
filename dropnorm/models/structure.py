"""What a model holds: its Dropout-family and BatchNorm-family modules (by type), the functional
dropout and batch-norm calls torch.fx sees where the model traces, and the layer -> BatchNorm pairs
that fold (a Linear, ConvNd or ConvTransposeNd module whose output only feeds one BatchNorm)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
BN_TYPES = (nn.modules.batchnorm._BatchNorm,)        # BatchNorm1d/2d/3d, SyncBatchNorm, the Lazy forms
FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
FUNCTIONAL_DROPOUT = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
                      torch.dropout, torch.nn.functional.dropout}
FUNCTIONAL_BN = {F.batch_norm, torch.batch_norm}


def is_dropout(m) -> bool:
    return isinstance(m, DROPOUT_TYPES)


def is_bn(m) -> bool:
    return isinstance(m, BN_TYPES)


@dataclass
class Structure:
    modules: dict = field(default_factory=dict)       # path -> type name, dropout- and BN-family only
    dropouts: list = field(default_factory=list)
    bns: list = field(default_factory=list)
    traced: bool = False
    trace_error: str = ""
    functional: list = field(default_factory=list)    # (enclosing module path, function name)
    pairs: list = field(default_factory=list)         # (layer path, bn path, how found)
    dropout_to_bn: list = field(default_factory=list)  # (dropout path or functional, bn path)

    def summary(self) -> dict:
        return {"batchnorm_modules": len(self.bns), "dropout_modules": len(self.dropouts),
                "functional_calls": [f"{fn} in {mod or '<root>'}" for mod, fn in self.functional],
                "traced": self.traced, "trace_error": self.trace_error,
                "fold_pairs": [f"{a} -> {b}" for a, b, _ in self.pairs],
                "dropout_feeding_bn": [f"{a} -> {b}" for a, b in self.dropout_to_bn]}


def _trace(model):
    """torch.fx with every Dropout-family, BatchNorm-family and foldable module a leaf (by type: a subclass
    defined outside torch.nn would otherwise be traced through, and its pair not seen)."""
    import torch.fx

    class _Tracer(torch.fx.Tracer):
        stack = []   # the module paths being traced through, for naming where a functional call sits

        def is_leaf_module(self, m, qualname):
            return isinstance(m, DROPOUT_TYPES + BN_TYPES + FOLDABLE) or super().is_leaf_module(m, qualname)

        def call_module(self, m, forward, args, kwargs):
            self.stack.append(self.path_of_module(m))
            try:
                return super().call_module(m, forward, args, kwargs)
            finally:
                self.stack.pop()

        def create_node(self, *a, **k):
            node = super().create_node(*a, **k)
            node.meta["dropnorm_module"] = self.stack[-1] if self.stack else ""
            return node

    root = copy.deepcopy(model).eval()
    graph = _Tracer().trace(root)
    return torch.fx.GraphModule(root, graph)


def analyse(model: nn.Module) -> Structure:
    s = Structure()
    for name, m in model.named_modules():
        if is_dropout(m):
            s.dropouts.append(name)
            s.modules[name] = type(m).__name__
        elif is_bn(m):
            s.bns.append(name)
            s.modules[name] = type(m).__name__
    try:
        gm = _trace(model)
        s.traced = True
    except Exception as e:  # a model fx cannot trace: by type only, and Sequential adjacency for the pairs
        s.trace_error = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        gm = None
    if gm is not None:
        mods = dict(gm.named_modules())
        for node in gm.graph.nodes:
            if node.op == "call_function" and node.target in FUNCTIONAL_DROPOUT | FUNCTIONAL_BN:
                where = node.meta.get("dropnorm_module", "")
                s.functional.append((where, getattr(node.target, "__name__", str(node.target))))
            if node.op == "call_module" and is_bn(mods.get(node.target)) and node.args:
                src = node.args[0]
                if getattr(src, "op", None) == "call_module" and isinstance(mods.get(src.target), FOLDABLE) \
                        and len(src.users) == 1:
                    s.pairs.append((src.target, node.target, "fx"))
                # dropout feeding this BatchNorm: directly, or through one foldable layer (Li et al. 2019)
                probe = src
                for _ in range(2):
                    if getattr(probe, "op", None) == "call_module" and is_dropout(mods.get(probe.target)):
                        s.dropout_to_bn.append((probe.target, node.target))
                        break
                    if getattr(probe, "op", None) == "call_function" and probe.target in FUNCTIONAL_DROPOUT:
                        s.dropout_to_bn.append(("functional " + probe.target.__name__, node.target))
                        break
                    if getattr(probe, "op", None) == "call_module" and isinstance(mods.get(probe.target), FOLDABLE) \
                            and probe.args:
                        probe = probe.args[0]
                    else:
                        break
        # a module called twice in the graph cannot be folded in place
        calls = {}
        for node in gm.graph.nodes:
            if node.op == "call_module":
                calls[node.target] = calls.get(node.target, 0) + 1
        s.pairs = [(a, b, how) for a, b, how in s.pairs if calls.get(a) == 1 and calls.get(b) == 1]
    else:
        for name, m in model.named_modules():
            if isinstance(m, nn.Sequential):
                children = list(m.named_children())
                for (na, a), (nb, b) in zip(children, children[1:]):
                    if isinstance(a, FOLDABLE) and is_bn(b):
                        s.pairs.append((f"{name}.{na}".lstrip("."), f"{name}.{nb}".lstrip("."), "sequential"))
                    if is_dropout(a) and is_bn(b):
                        s.dropout_to_bn.append((f"{name}.{na}".lstrip("."), f"{name}.{nb}".lstrip(".")))
    return s
