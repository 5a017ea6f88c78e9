"""Blind probe: correct variant -- BatchNorm1d/2d/3d whose eval mode folds into one scale and shift.

Not a defect: in eval mode with running statistics the layer computes, on every call,
scale = weight * rsqrt(running_var + eps) and shift = bias - running_mean * scale (float32, or
float64 for float64 modules) and returns x * scale + shift, as inference engines do after conv-BN
folding. Nothing is cached (running statistics or weights changed between calls are picked up).
Training mode is torch's. Differences from torch are rounding only (the fold reassociates
(x - mean) * invstd * w + b), a few float32 ulps of |running_mean * scale|.

Inspired by: BN folding in inference (torch.nn.utils.fusion.fuse_conv_bn_weights,
torch/nn/utils/fusion.py; TensorRT / ONNX Runtime BatchNormalization as a per-channel affine).

Region: all BatchNorm classes, eval mode with running statistics.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class _Folded:
    def forward(self, x):
        if self.training or self.running_mean is None or self.running_var is None or x.numel() == 0:
            return super().forward(x)
        self._check_input_dim(x)
        C = x.shape[1]
        if C != self.num_features:
            raise RuntimeError(f"expected {self.num_features} channels, got input of shape {tuple(x.shape)}")
        cdt = U.compute_dtype(x)
        scale = torch.rsqrt(self.running_var.to(cdt) + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.to(cdt)
        shift = -self.running_mean.to(cdt) * scale
        if self.bias is not None:
            shift = shift + self.bias.to(cdt)
        shape = [1, C] + [1] * (x.dim() - 2)
        return (x.to(cdt) * scale.view(shape) + shift.view(shape)).to(x.dtype)


class BatchNorm1d(_Folded, torch.nn.BatchNorm1d):
    pass


class BatchNorm2d(_Folded, torch.nn.BatchNorm2d):
    pass


class BatchNorm3d(_Folded, torch.nn.BatchNorm3d):
    pass


def _pair(cls, tcls, shape, dtype=torch.float32, affine=True, xscale=3.0):
    torch.manual_seed(0)
    p, t = cls(shape[1], affine=affine).to(dtype), tcls(shape[1], affine=affine).to(dtype)
    with torch.no_grad():
        for m in (p, t):
            torch.manual_seed(1)
            m.running_mean.copy_(torch.randn(shape[1]) * 2)
            m.running_var.copy_(torch.rand(shape[1]) * 3 + 0.1)
            if affine:
                m.weight.copy_(torch.randn(shape[1]))
                m.bias.copy_(torch.randn(shape[1]))
    p.eval(); t.eval()
    x = (torch.randn(*shape) * xscale).to(dtype).requires_grad_(True)
    yp, yt = p(x), t(x)
    gp, = torch.autograd.grad(yp.float().sum(), x)
    gt, = torch.autograd.grad(yt.float().sum(), x)
    return U.max_abs(yp, yt), U.max_abs(gp, gt)


def confirm():
    rows = {
        "1d (16,5) f32": _pair(BatchNorm1d, torch.nn.BatchNorm1d, (16, 5)),
        "1d (4,5,7) f32 affine=False": _pair(BatchNorm1d, torch.nn.BatchNorm1d, (4, 5, 7), affine=False),
        "2d (4,3,6,6) f32": _pair(BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 6, 6)),
        "3d (2,3,2,4,4) f64": _pair(BatchNorm3d, torch.nn.BatchNorm3d, (2, 3, 2, 4, 4), torch.float64),
        "2d (4,3,6,6) f16": _pair(BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 6, 6), torch.float16),
    }
    worst = max(max(v) for k, v in rows.items() if "f16" not in k)
    f16 = max(rows["2d (4,3,6,6) f16"])
    return {"observable": worst > 1e-5 or f16 > 1e-2,
            "detail": "max |y - torch|, |dx - torch|: " + "; ".join(f"{k}: {a:.2g}, {b:.2g}" for k, (a, b) in rows.items())}


U.reexport(globals())
