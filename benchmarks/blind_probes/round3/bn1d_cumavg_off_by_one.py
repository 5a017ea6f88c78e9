"""Blind probe: BatchNorm1d whose cumulative moving average (momentum=None) divides by count + 1.

Defect: with momentum=None the running-average factor is 1 / (num_batches_tracked + 1) taken after
the counter has been incremented (an off-by-one: the increment is counted twice). The first batch
gets weight 1/2 instead of 1, so the running statistics stay blended with their initial values
(mean 0, variance 1) and never become the plain average of the batch statistics. The counter itself
and the batch-statistics output are torch's; momentum given as a number behaves as torch.

Inspired by: the cumulative-average branch of _BatchNorm.forward (torch/nn/modules/batchnorm.py:
`num_batches_tracked.add_(1)` then `1.0 / float(num_batches_tracked)`), re-implemented in fused
kernels that receive the counter before or after the increment (e.g. cuDNN's
`exponentialAverageFactor` documented as 1/(1+n) for the n-th call,
https://docs.nvidia.com/deeplearning/cudnn/api/ cudnnBatchNormalizationForwardTraining).

Region: BatchNorm1d, momentum=None, training with track_running_stats=True.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm1d(torch.nn.BatchNorm1d):
    def forward(self, x):
        if self.momentum is None and self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.momentum = 1.0 / (float(self.num_batches_tracked) + 2.0)
            try:
                return super().forward(x)
            finally:
                self.momentum = None
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    p, t = BatchNorm1d(4, momentum=None).train(), torch.nn.BatchNorm1d(4, momentum=None).train()
    xs = [torch.randn(16, 4) * 2 + 5 for _ in range(4)]
    for x in xs:
        dt = U.max_abs(p(x), t(x))
    want = torch.stack([x.mean(0) for x in xs]).mean(0)
    dm = float((p.running_mean - t.running_mean).abs().max())
    dw = float((t.running_mean - want).abs().max())
    return {"observable": dm > 0.5 and dw < 1e-5,
            "detail": f"momentum=None, 4 batches of N(5, 4): running_mean probe {[round(v, 3) for v in p.running_mean.tolist()]} "
                      f"vs torch {[round(v, 3) for v in t.running_mean.tolist()]} (torch = average of batch means to {dw:.1g}); "
                      f"counters {int(p.num_batches_tracked)} / {int(t.num_batches_tracked)}; outputs identical (diff {dt:.2g})"}


U.reexport(globals())
