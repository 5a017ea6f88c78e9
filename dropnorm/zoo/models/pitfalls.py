"""Pitfall models: each a correct small model with one Dropout/BatchNorm pitfall users report, named with
the model clause and condition that must reject it (tests/test_model_audit.py checks it is rejected
there, and that the correct models of correct.py pass)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _randomise_stats(model, seed=7):
    """Running statistics as a trained model has them (not the 0/1 defaults, which hide eps and mean errors)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.05 + 0.005)
                if m.affine:
                    m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            m.num_batches_tracked.fill_(100)
    return model


def small_cnn(bn=nn.BatchNorm2d, drop=lambda: nn.Dropout(0.2)):
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), bn(8), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), drop(), nn.Linear(8, 4))
    return _randomise_stats(m)


def _x(seed=0):
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ MD-EVAL-01
class FunctionalDropoutHead(nn.Module):
    """F.dropout(x, p) at its default training=True: dropout active in eval (pytorch/pytorch#5406)."""

    def __init__(self):
        super().__init__()
        self.body = small_cnn(drop=nn.Identity)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(F.dropout(self.body(x), 0.3))


def build_functional_dropout_default():
    torch.manual_seed(0)
    return FunctionalDropoutHead(), _x()


def build_bn_without_running_stats():
    """BatchNorm2d(track_running_stats=False): eval normalises with the batch's statistics."""
    torch.manual_seed(0)
    return small_cnn(bn=lambda c: nn.BatchNorm2d(c, track_running_stats=False)), _x()


# ------------------------------------------------------------------ MD-EVAL-02
class CallCounter(nn.Module):
    """Counts forward calls in a buffer, in eval too (a buffer updated in eval; it ends up in checkpoints)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        self.calls += 1
        return x


def build_buffer_updated_in_eval():
    torch.manual_seed(0)
    m = small_cnn()
    m.insert(3, CallCounter())
    return m, _x()


class DrawAlwaysDropout(nn.Module):
    """A hand-written dropout that draws its mask before it looks at self.training: eval output right,
    but every eval call advances the global RNG (seeded training is irreproducible after validation)."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        keep = torch.rand_like(x) >= self.p
        return x * keep / (1 - self.p) if self.training else x


def build_rng_drawn_in_eval():
    torch.manual_seed(0)
    return small_cnn(drop=lambda: DrawAlwaysDropout(0.2)), _x()


class MCInForward(nn.Module):
    """Switches its dropout to training inside forward ('always-on' MC dropout): undoes model.eval()."""

    def __init__(self):
        super().__init__()
        self.body = small_cnn(drop=nn.Identity)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        self.drop.train()
        return self.drop(self.body(x))


def build_forward_switches_mode():
    torch.manual_seed(0)
    return MCInForward(), _x()


# ------------------------------------------------------------------ MD-BATCH-01
class SilentBatchNorm1d(nn.BatchNorm1d):
    """A hand-written BatchNorm1d that does not check for one value per channel: at batch 1 the output is
    beta whatever the input and the running variance update is 0 (what torch's ValueError prevents)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        mu, var = x.mean(0), x.var(0, unbiased=False)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mu)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
            self.num_batches_tracked += 1
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


def build_bn_accepts_one_value():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(6, 16), SilentBatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    return _randomise_stats(m), torch.randn(8, 6)


# ------------------------------------------------------------------ MD-FREEZE-01
def _freeze_requires_grad(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.requires_grad_(False)


def _freeze_eval(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
            m.requires_grad_(False)


def _freeze_momentum_zero(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.0
            m.requires_grad_(False)


def build_freeze_requires_grad_only():
    """requires_grad_(False) on the BatchNorms: their running statistics still update (pytorch/pytorch#86590)."""
    torch.manual_seed(0)
    return small_cnn(), _x(), {"freeze": _freeze_requires_grad}


def build_freeze_eval_undone():
    """bn.eval() per module, undone by the training loop's model.train() (keras-team/keras#7085 for Keras)."""
    torch.manual_seed(0)
    return small_cnn(), _x(), {"freeze": _freeze_eval}


def build_freeze_momentum_zero():
    """momentum = 0 keeps the statistics but num_batches_tracked still counts (a changed checkpoint)."""
    torch.manual_seed(0)
    return small_cnn(), _x(), {"freeze": _freeze_momentum_zero}


# ------------------------------------------------------------------ MD-FOLD-01
class PortedEpsBatchNorm2d(nn.BatchNorm2d):
    """Weights ported from Keras (epsilon 1e-3) by a forward that passes its own eps while bn.eps keeps torch's
    default 1e-5: the model is right, every folding tool reads bn.eps and folds a different model."""

    keras_eps = 1e-3

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.keras_eps)


def build_fold_ported_eps():
    torch.manual_seed(0)
    return small_cnn(bn=PortedEpsBatchNorm2d), _x()


# ------------------------------------------------------------------ MD-EXPORT-01
class ExportSkipsBatchNorm(nn.BatchNorm2d):
    """An 'export path' that skips the BatchNorm because the author assumed it was folded before export
    (models with export flags that change the graph, e.g. detection heads): eager and exported differ."""

    def forward(self, x):
        if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
            return x
        return super().forward(x)


def build_export_skips_bn():
    torch.manual_seed(0)
    return small_cnn(bn=ExportSkipsBatchNorm), _x()


# ------------------------------------------------------------------ MD-LOWP-01
class HalfBatchNorm(nn.Module):
    """A BatchNorm kept in bfloat16 ('to save memory'): its running statistics live in bfloat16."""

    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c).to(torch.bfloat16)

    def forward(self, x):
        return self.bn(x.to(self.bn.weight.dtype)).to(x.dtype)


def build_bn_stats_bfloat16():
    torch.manual_seed(0)
    return small_cnn(bn=HalfBatchNorm), _x()


class StorageOrderBatchNorm2d(nn.BatchNorm2d):
    """A hand-written BatchNorm2d kernel that reads the input's storage as if it were contiguous (NCHW):
    right for contiguous input, wrong statistics for channels_last (pytorch/pytorch#62594's class of bug)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        n, c = x.shape[:2]
        flat = torch.as_strided(x, (n, c, x[0, 0].numel()), (c * x[0, 0].numel(), x[0, 0].numel(), 1))
        mu, var = flat.mean((0, 2)), flat.var((0, 2), unbiased=False)
        with torch.no_grad():
            k = flat.shape[0] * flat.shape[2]
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mu)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * k / (k - 1))
            self.num_batches_tracked += 1
        return F.batch_norm(x, mu, var, self.weight, self.bias, False, 0.0, self.eps)


def build_bn_channels_last_storage():
    torch.manual_seed(0)
    return small_cnn(bn=StorageOrderBatchNorm2d), _x()


# ------------------------------------------------------------------ MD-SHIFT-01
def build_dropout_before_bn():
    """Dropout(0.5) -> Linear -> BatchNorm1d: the variance shift of Li et al. (CVPR 2019)."""
    torch.manual_seed(2)
    m = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 16), nn.BatchNorm1d(16), nn.ReLU(),
                      nn.Linear(16, 3))
    return m, torch.randn(32, 6)


# ------------------------------------------------------------------ MD-MC-01
class DropoutBlock(nn.Dropout):
    """A 'dropout block' that normalises after dropping (a Dropout subclass holding a BatchNorm): the MC recipe
    (dropout modules back to training) puts its BatchNorm into training too and updates its statistics."""

    def __init__(self, p, c):
        super().__init__(p)
        self.bn = nn.BatchNorm1d(c)

    def forward(self, x):
        return self.bn(super().forward(x))


def build_mc_updates_stats():
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), DropoutBlock(0.2, 16), nn.Linear(16, 3))
    return _randomise_stats(m), torch.randn(8, 6)


class BypassedDropout(nn.Module):
    """Holds nn.Dropout but calls F.dropout(x, self.drop.p, self.training): the MC recipe switches the module,
    the forward reads the parent's flag, and MC samples never vary (a common timm/torchvision head pattern
    when the module is kept only for its p)."""

    def __init__(self):
        super().__init__()
        self.body = small_cnn(drop=nn.Identity)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return F.dropout(self.body(x), self.drop.p, self.training)


def build_mc_bypassed_dropout():
    torch.manual_seed(0)
    return BypassedDropout(), _x()


FAST = ("eval", "batch", "freeze", "fold", "lowp", "shift", "mc")   # without export (seconds each)
MODELS = {
    # name: (clause, condition, where users meet it, build, checks)
    "functional_dropout_default": ("MD-EVAL-01", "deterministic", "pytorch/pytorch#5406",
                                   build_functional_dropout_default, ("eval",)),
    "bn_without_running_stats": ("MD-EVAL-01", "batch-independent", "facebookresearch/detr#498",
                                 build_bn_without_running_stats, ("eval",)),
    "buffer_updated_in_eval": ("MD-EVAL-02", "buffers", "a counter buffer in a checkpointed model",
                               build_buffer_updated_in_eval, ("eval",)),
    "rng_drawn_in_eval": ("MD-EVAL-02", "rng", "hand-written dropout drawing before testing self.training",
                          build_rng_drawn_in_eval, ("eval",)),
    "forward_switches_mode": ("MD-EVAL-02", "modes", "always-on MC dropout inside forward",
                              build_forward_switches_mode, ("eval",)),
    "bn_accepts_one_value": ("MD-BATCH-01", "one-value-raises", "pytorch/pytorch#4534, zhanghang1989/ResNeSt#46",
                             build_bn_accepts_one_value, ("batch",)),
    "freeze_requires_grad_only": ("MD-FREEZE-01", "frozen-stats", "pytorch/pytorch#86590",
                                  build_freeze_requires_grad_only, ("batch", "freeze")),
    "freeze_eval_undone": ("MD-FREEZE-01", "frozen-stats", "keras-team/keras#7085; model.train() after bn.eval()",
                           build_freeze_eval_undone, ("batch", "freeze")),
    "freeze_momentum_zero": ("MD-FREEZE-01", "frozen-counters", "momentum=0 as a freeze",
                             build_freeze_momentum_zero, ("batch", "freeze")),
    "fold_ported_eps": ("MD-FOLD-01", "fusion-utils", "Keras eps 1e-3 vs torch 1e-5 when porting weights",
                        build_fold_ported_eps, ("fold",)),
    "export_skips_bn": ("MD-EXPORT-01", "onnxruntime", "export-only code paths (ultralytics export flags)",
                        build_export_skips_bn, ("export",)),
    "bn_stats_bfloat16": ("MD-LOWP-01", "autocast-bf16-dtype", "pytorch/pytorch#115500",
                          build_bn_stats_bfloat16, ("batch", "lowp")),
    "bn_channels_last_storage": ("MD-LOWP-01", "channels-last-stats", "pytorch/pytorch#62594",
                                 build_bn_channels_last_storage, ("batch", "lowp")),
    "dropout_before_bn": ("MD-SHIFT-01", "variance-shift", "Li et al., CVPR 2019",
                          build_dropout_before_bn, ("batch", "shift")),
    "mc_updates_stats": ("MD-MC-01", "stats-frozen", "MC dropout with a BatchNorm inside a Dropout subclass",
                         build_mc_updates_stats, ("mc",)),
    "mc_bypassed_dropout": ("MD-MC-01", "samples-vary", "F.dropout(x, self.drop.p, self.training) heads",
                            build_mc_bypassed_dropout, ("mc",)),
}
