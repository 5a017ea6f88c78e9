"""Blind probe: BatchNorm1d whose eval-mode backward uses the training-mode input gradient.

Defect: in eval mode with running statistics the forward is torch's (normalise by the running
mean/variance), but the input gradient is computed with the batch-statistics formula
dx = w * invstd * (g - mean(g) - xhat * mean(g * xhat)), with xhat and invstd from the running
statistics, instead of the correct dx = w * invstd * g (the running statistics are constants).
Weight and bias gradients and every training-mode gradient are torch's.

Inspired by: fused BN backward kernels that take a single "training" code path regardless of mode
(frozen-BN fine-tuning reports, e.g. cudnnBatchNormalizationBackward only has a training-mode
formula; ATen switches explicitly: aten/src/ATen/native/Normalization.cpp batch_norm_backward_cpu_template
`if (train) ... else grad_input = grad_out * invstd * w`).

Region: BatchNorm1d, eval mode with running statistics, gradient with respect to the input.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class _EvalBN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, rm, rv, eps):
        y = F.batch_norm(x, rm, rv, weight, bias, False, 0.0, eps)
        ctx.save_for_backward(x, weight, rm, rv)
        ctx.eps = eps
        ctx.has_w = weight is not None
        ctx.has_b = bias is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, rm, rv = ctx.saved_tensors
        dims = U.reduce_dims(x)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        cdt = U.compute_dtype(x)
        g32, x32 = g.to(cdt), x.to(cdt)
        invstd = torch.rsqrt(rv.to(cdt) + ctx.eps).view(shape)
        xhat = (x32 - rm.to(cdt).view(shape)) * invstd
        w = weight.to(cdt).view(shape) if ctx.has_w else 1.0
        gx = w * invstd * (g32 - g32.mean(dims, keepdim=True) - xhat * (g32 * xhat).mean(dims, keepdim=True))
        gw = (g32 * xhat).sum(dims).to(weight.dtype) if ctx.has_w and ctx.needs_input_grad[1] else None
        gb = g32.sum(dims).to(weight.dtype) if ctx.has_b and ctx.needs_input_grad[2] else None
        return gx.to(x.dtype), gw, gb, None, None, None


class BatchNorm1d(torch.nn.BatchNorm1d):
    def forward(self, x):
        if (not self.training and self.running_mean is not None and torch.is_grad_enabled()
                and x.requires_grad and x.dim() in (2, 3) and x.numel()):
            self._check_input_dim(x)
            return _EvalBN.apply(x, self.weight, self.bias, self.running_mean, self.running_var, self.eps)
        return super().forward(x)


def _grads(m, x):
    x = x.clone().requires_grad_(True)
    y = m(x)
    g = torch.linspace(-1, 2, y.numel()).view(y.shape)
    y.backward(g)
    return y.detach(), x.grad, m.weight.grad


def confirm():
    torch.manual_seed(0)
    p, t = BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        for m in (p, t):
            m.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
            m.running_var.copy_(torch.tensor([2.0, 0.5, 4.0]))
            m.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
    p.eval(); t.eval()
    x = torch.randn(8, 3, 5)
    yp, gp, wp = _grads(p, x)
    yt, gt, wt = _grads(t, x)
    dy, dg, dw = U.max_abs(yp, yt), U.max_abs(gp, gt), U.max_abs(wp, wt)
    return {"observable": dg > 0.05 and dy == 0,
            "detail": f"eval, (8,3,5), non-trivial running stats: max |dx - torch| {dg:.3g}; outputs diff {dy:.2g}; "
                      f"weight grad diff {dw:.2g}"}


U.reexport(globals())
