"""Two interleaved lanes share their draws: elements 4j and 4j+2, and 4j+1 and 4j+3, get the
same random number (a generator filling two SIMD lanes per draw, stored with stride 2).
Neighbours at distance 1 are independent; at distance 2 they agree. Violates DO-TRAIN-03."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-03", "summary": "elements i and i+2 share one draw in blocks of four (lag-2 dependence)",
          "source": "probe: lag-2 dependence (issue 14)"}


class _Lag2Draws:
    def draw_keep(self, shape, x):
        n = x.numel()
        blocks = (n + 3) // 4
        half = torch.rand(blocks, 1, 2, device=x.device)
        draws = half.expand(blocks, 2, 2).reshape(-1)[:n]  # [a, b, a, b] per block of four
        return (draws >= self.p).view(shape)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_Lag2Draws)
