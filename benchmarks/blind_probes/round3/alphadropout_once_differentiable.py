"""Blind probe: AlphaDropout implemented as an autograd.Function marked @once_differentiable.

Defect: forward and first-order gradient are torch's (same mask, same RNG draw), but the backward is
not itself differentiable: a double backward (gradient of the input gradient with respect to
grad_output, as in gradgradcheck, gradient penalties or Hessian-vector products) raises
"trying to differentiate twice a function that was marked with @once_differentiable". Torch's
alpha_dropout is composed of differentiable ops (x * noise + b), so its double backward works.

Inspired by: fused dropout kernels exposed through torch.autograd.Function with
@torch.autograd.function.once_differentiable (the common pattern in extension code, e.g. apex fused
ops; https://pytorch.org/docs/stable/notes/extending.html), versus ATen's alpha_dropout built from
differentiable tensor ops (aten/src/ATen/native/Dropout.cpp, _dropout_impl with is_alpha_dropout).

Region: AlphaDropout, training, 0 < p < 1, input requiring grad and create_graph=True backward.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

import blindprobe_util as U


class _FusedAlpha(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            yi = F.alpha_dropout(xi, p, True)
        ctx.inner = (xi, yi)
        return yi.detach()

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        xi, yi = ctx.inner
        (gx,) = torch.autograd.grad(yi, xi, g)
        return gx, None


class AlphaDropout(torch.nn.AlphaDropout):
    def forward(self, x):
        if self.training and 0.0 < self.p < 1.0 and x.requires_grad and torch.is_grad_enabled():
            return _FusedAlpha.apply(x, self.p)
        return F.alpha_dropout(x, self.p, self.training)


def _run(layer):
    torch.manual_seed(0)
    x = torch.randn(6, 10, requires_grad=True)
    y = layer(x)
    v = torch.randn(6, 10, requires_grad=True)
    (gx,) = torch.autograd.grad(y, x, v, create_graph=True)
    try:
        gx.sum().backward()
        gv, err = v.grad, None
    except RuntimeError as e:
        gv, err = None, str(e).splitlines()[0][:90]
    return y.detach(), gx.detach(), gv, err


def confirm():
    yp, gp, gvp, errp = _run(AlphaDropout(0.3).train())
    yt, gt, gvt, errt = _run(torch.nn.AlphaDropout(0.3).train())
    return {"observable": errp is not None and errt is None and U.max_abs(yp, yt) == 0 and U.max_abs(gp, gt) == 0,
            "detail": f"AlphaDropout(0.3), (6,10): forward diff {U.max_abs(yp, yt):.2g}, first grad diff {U.max_abs(gp, gt):.2g}; "
                      f"double backward: probe raises '{errp}', torch {'raises ' + str(errt) if errt else 'ok'}"}


U.reexport(globals())
