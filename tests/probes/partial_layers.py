"""Only Dropout and BatchNorm2d (torch.nn's): Dropout2d, BatchNorm1d and BatchNorm3d are missing.
Expected: no D2 clause reads pass; the missing layers are listed."""
import torch.nn as nn

Dropout, BatchNorm2d = nn.Dropout, nn.BatchNorm2d
