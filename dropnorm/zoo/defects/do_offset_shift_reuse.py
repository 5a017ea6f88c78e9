"""From 2^14 elements on, a training call reuses the previous call's uniforms shifted by 700 positions
(a Philox offset advanced too little between calls): mask k at i equals mask k-1 at i + 700, only the last
700 values are fresh. Same-index agreement is that of independent masks. Violates DO-TRAIN-05."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-05", "summary": "successive calls reuse the previous stream shifted by 700 elements",
          "source": "blind probe round 2 (issue 22): benchmarks/blind_probes/round2/dropout_offset_reuse.py"}


class _ShiftedStream:
    def draw_keep(self, shape, x):
        n, prev = shape.numel(), getattr(self, "_prev", None)
        u = torch.rand(n, device=x.device)
        if n >= 2 ** 14 and prev is not None and prev.numel() == n:
            u[: n - 700] = prev[700:]
        self._prev = u
        return (u >= self.p).view(shape)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_ShiftedStream)
