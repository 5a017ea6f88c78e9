"""Blind probe: BatchNorm3d whose reset_running_stats() does nothing in eval mode.

Defect: reset_running_stats() guards the reset with `self.training and self.track_running_stats`
(the forward's update condition) instead of `self.track_running_stats`: a layer in eval mode keeps
its running mean, variance and num_batches_tracked. reset_parameters() (which calls it) therefore
resets weight and bias but not the statistics in eval mode. In training mode both are exact.

Inspired by: copy-paste of the forward's "buffers are updated only in training" guard into the reset
method (and frameworks where reset is implemented as "the next training step starts over").

Region: BatchNorm3d (tracked), reset_running_stats() or reset_parameters() called while in eval mode
after the statistics have moved.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm3d(torch.nn.BatchNorm3d):
    def reset_running_stats(self):
        if self.training and self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()


def _after(cls, mode):
    torch.manual_seed(0)
    m = cls(2).train()
    m(torch.randn(2, 2, 2, 2, 2) + 3)
    m.train(mode)
    m.reset_running_stats()
    return m.running_mean.tolist(), int(m.num_batches_tracked)


def confirm():
    pe, te = _after(BatchNorm3d, False), _after(torch.nn.BatchNorm3d, False)
    pt, tt = _after(BatchNorm3d, True), _after(torch.nn.BatchNorm3d, True)
    return {"observable": pe != te,
            "detail": f"reset in eval: running_mean, nbt probe {pe} vs torch {te}; reset in train: probe {pt} vs torch {tt}"}


U.reexport(globals())
