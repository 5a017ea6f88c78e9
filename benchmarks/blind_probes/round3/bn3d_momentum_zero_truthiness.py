"""Blind probe: BatchNorm3d that tests `if not momentum` and so treats momentum=0.0 as None.

Defect: the running-average factor is chosen with a truthiness test (`momentum or cumulative`), so
momentum=0.0 -- "never update the running statistics" -- falls into the momentum=None branch and
uses the cumulative moving average 1/num_batches_tracked: the first training batch overwrites the
running mean/variance with the batch statistics and later batches average into them. Every other
momentum value, including None, behaves as torch.

Inspired by: Python truthiness bugs on numeric options (0.0 is falsy), versus torch's explicit
`if self.momentum is None:` in _BatchNorm.forward (torch/nn/modules/batchnorm.py).

Region: BatchNorm3d, momentum=0.0, training with track_running_stats=True (then anything that uses
the running statistics: eval outputs, state_dict).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm3d(torch.nn.BatchNorm3d):
    def forward(self, x):
        if self.momentum is not None and not self.momentum and self.training and self.track_running_stats:
            self.momentum = None
            try:
                return super().forward(x)
            finally:
                self.momentum = 0.0
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    p, t = BatchNorm3d(3, momentum=0.0).train(), torch.nn.BatchNorm3d(3, momentum=0.0).train()
    for _ in range(3):
        x = torch.randn(4, 3, 2, 3, 3) * 3 + 2
        dt = U.max_abs(p(x), t(x))
    dm = float((p.running_mean - t.running_mean).abs().max())
    p.eval(); t.eval()
    de = U.max_abs(p(x), t(x))
    return {"observable": dm > 0.5 and dt == 0,
            "detail": f"momentum=0.0, 3 training batches of N(2, 9): running_mean probe {p.running_mean.tolist()} vs torch "
                      f"{t.running_mean.tolist()}; training outputs identical (diff {dt:.2g}); eval max |y - torch| {de:.3g}"}


U.reexport(globals())
