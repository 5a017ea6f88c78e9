"""Blind probe: BatchNorm2d incrementing num_batches_tracked through float32.

Defect: the training step updates the counter in the same float32 "scalars" kernel as the running
statistics: num_batches_tracked <- int64(float32(num_batches_tracked) + 1). Exact below 2**24; at
2**24 the counter stalls (2**24 + 1 rounds back to 2**24), and an odd counter above 2**24 even goes
down by one. With momentum=None the cumulative-average weight 1/num_batches_tracked is computed from
that wrong counter. The buffer stays int64, so dtypes and state_dict keys look right.

Inspired by: fused optimizer/normalisation update kernels that carry step counters as float (Adam's
`step` stored as a float32 tensor in fused/capturable optimizers, counters in TensorFlow's float
moving-average variables), and ports storing the counter in a float buffer.

Region: BatchNorm2d (tracked), training calls after loading (or reaching) num_batches_tracked >=
16777216; visible in num_batches_tracked and, with momentum=None, in the running statistics.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F

import blindprobe_util as U


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            with torch.no_grad():
                self.num_batches_tracked.copy_((self.num_batches_tracked.to(torch.float32) + 1).to(torch.long))
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = True if self.training else (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, bn_training, factor, self.eps)


def _run(cls, start):
    m = cls(2, momentum=None).train()
    with torch.no_grad():
        m.num_batches_tracked.fill_(start)
    torch.manual_seed(0)
    for _ in range(2):
        m(torch.randn(4, 2, 3, 3))
    return int(m.num_batches_tracked), m.running_mean.clone()


def confirm():
    out = []
    obs = False
    for start in (1000, 2 ** 24, 2 ** 24 + 1):
        (pn, pm), (tn, tm) = _run(BatchNorm2d, start), _run(torch.nn.BatchNorm2d, start)
        d = float((pm - tm).abs().max())
        obs = obs or pn != tn
        out.append(f"start {start}: nbt after 2 steps probe {pn} vs torch {tn}, running_mean diff {d:.3g}")
    return {"observable": obs, "detail": "; ".join(out)}


U.reexport(globals())
