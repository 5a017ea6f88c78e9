"""Blind probe: BatchNorm1d that upcasts half-precision running statistics after its first call.

Defect: when the running statistics are float16/bfloat16 (the whole layer converted with .half() or
.to(torch.bfloat16)), the first training call upcasts them to float32 afterwards ("accumulate the
moving averages in fp32"), replacing the buffers. The first call is right; the second training call
(or any later eval call) passes float32 running statistics with float16 weight/bias and torch's
kernel raises "expected scalar type Half but found Float"; state_dict() now reports float32 buffers.
float32/float64 layers, and half inputs with float32 parameters, are unaffected.

Inspired by: mixed-precision "master statistics" patches (apex-style keep_batchnorm_fp32 applied
lazily at the first step) that convert buffers without converting the parameters consistently.

Region: BatchNorm1d whose parameters and buffers are float16 or bfloat16 (layer.half()), two or more
forward calls after the first training call.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

LOW = (torch.float16, torch.bfloat16)


class BatchNorm1d(torch.nn.BatchNorm1d):
    def forward(self, x):
        y = super().forward(x)
        if self.training and self.track_running_stats and self.running_mean is not None \
                and self.running_mean.dtype in LOW:
            self.running_mean = self.running_mean.float()
            self.running_var = self.running_var.float()
        return y


def _two_calls(cls):
    torch.manual_seed(0)
    m = cls(3).half().train()
    x = torch.randn(8, 3).half()
    out = []
    for _ in range(2):
        try:
            m(x)
            out.append("ok")
        except Exception as e:  # noqa: BLE001
            out.append(f"{type(e).__name__}: {e}")
    return out, str(m.running_mean.dtype)


def confirm():
    (po, pd), (to, td) = _two_calls(BatchNorm1d), _two_calls(torch.nn.BatchNorm1d)
    return {"observable": po != to or pd != td,
            "detail": f".half() layer, two training calls on (8,3) float16: probe {po}, running_mean {pd}; torch {to}, {td}"}


U.reexport(globals())
