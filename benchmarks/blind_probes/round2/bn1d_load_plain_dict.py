"""Blind probe: BatchNorm1d that ignores num_batches_tracked in a checkpoint without _metadata.

Defect: _load_from_state_dict's version migration runs for every state dict whose version is
unknown (a plain dict or OrderedDict built by hand, without torch's `_metadata`) and fills
num_batches_tracked from the module's current counter -- without first checking whether the dict
carries one. A plain-dict checkpoint's counter is silently replaced by the layer's own (0 for a fresh
layer); running mean/var, weight and bias load exactly. With momentum=None the cumulative average
then restarts (the next batch gets weight 1 instead of 1/(k+1)). state_dict() round trips (which
carry _metadata version 2) and version-1 checkpoints are unaffected.

Inspired by: torch's own _NormBase._load_from_state_dict migration block (`if (version is None or
version < 2) and self.track_running_stats: ... if key not in state_dict: ...`), with the inner
membership check lost -- and by checkpoints re-assembled as plain dicts (dict comprehensions over
state_dict(), safetensors loading), which drop _metadata.

Region: BatchNorm1d (tracked), load_state_dict of a plain dict (no _metadata) containing a
num_batches_tracked different from the layer's; visible in num_batches_tracked and, with
momentum=None, in the next running-statistics update.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm1d(torch.nn.BatchNorm1d):
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        version = local_metadata.get("version", None)
        if version is None and self.track_running_stats and self.num_batches_tracked is not None:
            state_dict[prefix + "num_batches_tracked"] = self.num_batches_tracked.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def confirm():
    src = torch.nn.BatchNorm1d(3, momentum=None)
    with torch.no_grad():
        src.running_mean.fill_(2.0)
        src.running_var.fill_(4.0)
        src.num_batches_tracked.fill_(9)
    plain = {k: v.clone() for k, v in src.state_dict().items()}  # a plain dict: no _metadata
    p, t = BatchNorm1d(3, momentum=None), torch.nn.BatchNorm1d(3, momentum=None)
    p.load_state_dict(plain)
    t.load_state_dict(plain)
    nb = (int(p.num_batches_tracked), int(t.num_batches_tracked))
    torch.manual_seed(0)
    x = torch.randn(8, 3)
    p(x), t(x)
    dm = float((p.running_mean - t.running_mean).abs().max())
    q = BatchNorm1d(3, momentum=None)
    q.load_state_dict(src.state_dict())
    return {"observable": nb[0] != nb[1],
            "detail": f"plain-dict checkpoint with num_batches_tracked=9: loaded as {nb[0]} (probe) vs {nb[1]} (torch); "
                      f"after one momentum=None step running_mean differs by {dm:.3g}; state_dict() with _metadata "
                      f"loads as {int(q.num_batches_tracked)}"}


U.reexport(globals())
