"""Correct models: every MUST model clause must pass on each (no false alarm), and MD-SHIFT-01 must not
warn (none has a dropout feeding a BatchNorm)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dropnorm.zoo.models.pitfalls import _randomise_stats, small_cnn


def build_small_cnn():
    """conv-BN-ReLU twice, global pooling, dropout, linear: the usual order (dropout after the last BN)."""
    torch.manual_seed(0)
    return small_cnn(), torch.randn(4, 3, 8, 8)


def build_mlp_bn():
    """Linear-BatchNorm1d-ReLU-Dropout-Linear: smallest training batch 2 (one value per channel at 1)."""
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    _randomise_stats(m)
    return m, torch.randn(8, 6)


def build_small_cnn_frozen():
    """The small CNN fine-tuned with dropnorm.models.freeze_batchnorm as its own freeze recipe."""
    from dropnorm.models import freeze_batchnorm
    m, x = build_small_cnn()
    return m, x, {"freeze": freeze_batchnorm}


class DropoutNet(nn.Module):
    """DropoutNet as shared/seeds/004 writes it (section 'PyTorch 实现示例'): fc1 (10 -> 10), ReLU,
    nn.Dropout(p=0.5) ('训练阶段随机丢弃', dropped in training), fc2 (10 -> 1); model.train() draws masks,
    model.eval() turns dropout off."""

    def __init__(self, input_size=10, hidden_size=10, dropout_p=0.5):
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.dropout = nn.Dropout(p=dropout_p)
        self.fc2 = nn.Linear(hidden_size, 1)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.dropout(x)
        return self.fc2(x)


def build_dropoutnet():
    """The seed's own instance: torch.manual_seed(42), DropoutNet(10, 10, 0.5), input torch.ones((1, 10))."""
    torch.manual_seed(42)
    return DropoutNet(input_size=10, hidden_size=10, dropout_p=0.5), torch.ones((1, 10))


MODELS = {
    "small_cnn": ("", "", "the usual conv-BN-ReLU stack", build_small_cnn, ()),
    "mlp_bn": ("", "", "Linear-BN1d-ReLU-Dropout-Linear", build_mlp_bn, ()),
    "small_cnn_frozen": ("", "", "freeze_batchnorm as the model's recipe", build_small_cnn_frozen, ()),
    "dropoutnet_seed004": ("", "", "shared/seeds/004 (DropoutNet, its own code)", build_dropoutnet, ()),
}
