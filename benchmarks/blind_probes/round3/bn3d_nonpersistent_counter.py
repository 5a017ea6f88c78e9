"""Blind probe: BatchNorm3d whose num_batches_tracked is a non-persistent buffer.

Defect: the batch counter is registered with `persistent=False`: it still counts (and drives the
momentum=None cumulative average), but it is missing from state_dict(), so a saved/loaded model
restarts its count at whatever the receiving module had, and loading a torch BatchNorm3d state_dict
with strict=True fails with an unexpected key "num_batches_tracked". Forward behaviour is torch's.

Inspired by: implementations that treat step counters as transient bookkeeping (register_buffer(...,
persistent=False), https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_buffer),
versus torch's persistent counter added in state-dict version 2 (torch/nn/modules/batchnorm.py,
_NormBase._version = 2 and _load_from_state_dict).

Region: BatchNorm3d with track_running_stats=True: state_dict keys, load_state_dict (strict), and
the counter after a save/load round trip.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm3d(torch.nn.BatchNorm3d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.track_running_stats:
            nbt = self._buffers.pop("num_batches_tracked")
            self.register_buffer("num_batches_tracked", nbt, persistent=False)


def confirm():
    p, t = BatchNorm3d(2), torch.nn.BatchNorm3d(2)
    kp, kt = sorted(p.state_dict()), sorted(t.state_dict())
    try:
        BatchNorm3d(2).load_state_dict(t.state_dict())
        err = None
    except RuntimeError as e:
        err = str(e).splitlines()[-1].strip()[:100]
    torch.manual_seed(0)
    x = torch.randn(2, 2, 2, 2, 2)
    for _ in range(3):
        p.train()(x); t.train()(x)
    q, u = BatchNorm3d(2), torch.nn.BatchNorm3d(2)
    q.load_state_dict(p.state_dict()); u.load_state_dict(t.state_dict())
    return {"observable": kp != kt and err is not None,
            "detail": f"state_dict keys probe {kp} vs torch {kt}; strict load of torch's state_dict: {err}; "
                      f"counter after 3 batches + save/load: probe {int(q.num_batches_tracked)} vs torch {int(u.num_batches_tracked)}"}


U.reexport(globals())
