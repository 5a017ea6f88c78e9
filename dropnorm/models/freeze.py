"""Freezing BatchNorm in fine-tuning (MD-FREEZE-01): the recipe that survives model.train(), and the common
recipes whose effect the model audit reports."""
from __future__ import annotations

from dropnorm.models.structure import is_bn


def freeze_batchnorm(model, names=None):
    """Freeze BatchNorm modules (all, or those at `names`) so that model.train() cannot undo it: eval mode,
    no gradients, and a forward pre-hook that puts the module back into eval before every call (a hook
    travels with copy.deepcopy and state changes; an overridden model.train would not). Returns the paths."""
    frozen = [n for n, m in model.named_modules() if is_bn(m) and (names is None or n in names)]
    for n in frozen:
        m = model.get_submodule(n)
        m.eval()
        m.requires_grad_(False)
        m.register_forward_pre_hook(_stay_in_eval)
    return frozen


def _stay_in_eval(module, args):
    if module.training:
        module.eval()


def _requires_grad_only(model):
    for m in model.modules():
        if is_bn(m):
            m.requires_grad_(False)
    return None


def _eval_then_train(model):
    for m in model.modules():
        if is_bn(m):
            m.eval()
            m.requires_grad_(False)
    return None


def _momentum_zero(model):
    for m in model.modules():
        if is_bn(m):
            m.momentum = 0.0
            m.requires_grad_(False)
    return None


def recipes() -> dict:
    """The common freeze recipes of fine-tuning code (each reported for information, MD-FREEZE-01)."""
    return {"requires-grad-false": _requires_grad_only, "bn-eval-then-model-train": _eval_then_train,
            "momentum-zero": _momentum_zero}
