"""Past flat index 2^20 the four elements of each aligned quad share one uniform (a vectorised tail path
reading lane 0 of a Philox4x32 draw for all four lanes): the keep rate is exact everywhere and tensors of
up to 2^20 elements are correct. Violates DO-TRAIN-03."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-03", "summary": "one draw per aligned quad of elements past 2^20",
          "source": "blind probe round 2 (issue 22): benchmarks/blind_probes/round2/dropout_quad_reuse_2p20.py"}


class _QuadTail:
    def draw_keep(self, shape, x):
        u = torch.rand(shape.numel(), device=x.device)
        tail = u[2 ** 20:]
        tail.copy_(tail[::4].repeat_interleave(4)[: tail.numel()])
        return (u >= self.p).view(shape)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_QuadTail)
