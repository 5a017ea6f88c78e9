"""A BatchNorm folding that drops the preceding layer's own bias: b' = -rm s + beta instead of
(b - rm) s + beta (written for conv layers without bias, as ResNets have, then applied to one with a bias).
Violates BN-FOLD-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-FOLD-01", "summary": "folding ignores the conv/linear layer's bias",
          "source": "plausible: fold helpers written for bias-free convolutions (ResNet conv-bn blocks) reused on "
                    "layers with a bias"}


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """torch.nn.utils.fusion.fuse_conv_bn_weights' signature; the defect: conv_b is not used."""
    if bn_w is None:
        bn_w = torch.ones_like(bn_rm)
    if bn_b is None:
        bn_b = torch.zeros_like(bn_rm)
    s = bn_w * torch.rsqrt(bn_rv + bn_eps)
    shape = (-1,) + (1,) * (conv_w.ndim - 1)
    return conv_w * s.reshape(shape), -bn_rm * s + bn_b


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
