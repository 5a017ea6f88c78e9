"""The from-scratch BatchNorm of the d2l book (d2l.ai, "Batch Normalization", PyTorch tab), as its readers
copy it, given torch.nn's constructor signature so that the suite can build it. What the book's code does and
this file keeps: a 2-D input (N, C) or a 4-D one (N, C, H, W) only, parameters and running statistics used as
(1, C) or (1, C, 1, 1); no num_batches_tracked (so no momentum=None); affine and track_running_stats ignored; the moving variance averages the biased batch variance; eps 1e-5 and the update
(1 - momentum) * moving + momentum * batch. Kept here as (C,) buffers under torch.nn's names (the book's plain
attributes are a separate catalogue defect, running_stats_not_buffers) and eval chosen by the module's mode
(the book uses grad mode).

A (N, C, L) input to BatchNorm1d is a RuntimeError in the book's code (the (1, C) parameters do not broadcast
against it). Expected: the error fails the clause that covers that input class (BN-API-03/accepts), the other
clauses are judged on the inputs it accepts, and BN-TRAIN-03 names the biased running variance (issue 22)."""
import torch
from torch import nn


def _batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum, training):
    if not training:
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        if X.dim() == 2:
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        X_hat = (X - mean) / torch.sqrt(var + eps)
        moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
        moving_var = (1.0 - momentum) * moving_var + momentum * var
    Y = gamma * X_hat + beta
    return Y, moving_mean.data, moving_var.data


class _D2LBatchNorm(nn.Module):
    num_dims = 2

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats  # accepted, not honoured (as the book)
        # torch.nn's names and (C,) shapes so that checkpoints and the suite can read them; the book's
        # (1, C) / (1, C, 1, 1) shapes are views taken in forward
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, X):
        shape = (1, self.num_features) if self.num_dims == 2 else (1, self.num_features, 1, 1)
        Y, mm, mv = _batch_norm(X, self.weight.view(shape), self.bias.view(shape), self.running_mean.view(shape),
                                self.running_var.view(shape), self.eps, self.momentum, self.training)
        if self.training:
            with torch.no_grad():
                self.running_mean.copy_(mm.reshape(-1))
                self.running_var.copy_(mv.reshape(-1))
        return Y


class BatchNorm1d(_D2LBatchNorm):
    num_dims = 2


class BatchNorm2d(_D2LBatchNorm):
    num_dims = 4
