"""A BatchNorm folding that forgets eps: s = gamma / sqrt(rv) (the folded layer divides by zero where a channel's
running variance is 0, and is off by sqrt(1 + eps/rv) elsewhere). Violates BN-FOLD-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-FOLD-01", "summary": "folding scales by gamma/sqrt(running_var), without eps",
          "source": "plausible: hand-written fold_bn helpers in deployment scripts; ncnn's BatchNorm layer had no "
                    "eps and relied on the converter (https://github.com/Tencent/ncnn/issues/303)"}


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """torch.nn.utils.fusion.fuse_conv_bn_weights' signature; the defect: eps left out."""
    if conv_b is None:
        conv_b = torch.zeros_like(bn_rm)
    if bn_w is None:
        bn_w = torch.ones_like(bn_rm)
    if bn_b is None:
        bn_b = torch.zeros_like(bn_rm)
    s = bn_w / torch.sqrt(bn_rv)
    shape = (-1,) + (1,) * (conv_w.ndim - 1)
    return conv_w * s.reshape(shape), (conv_b - bn_rm) * s + bn_b


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
