"""SyncBatchNorm accepts only the ranks some BatchNormNd reads (2 to 5), where torch.nn.SyncBatchNorm accepts any
input of rank >= 2, (N, C, *): a rank-6 input (a BatchNorm over four trailing axes, as video and volumetric models
with a time axis use) raises. Violates BN-SYNC-01 (any-rank)."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects import _family

DEFECT = {"clause": "BN-SYNC-01", "summary": "SyncBatchNorm rejects input ranks no BatchNormNd reads",
          "source": "torch.nn.SyncBatchNorm._check_input_dim (only x.dim() < 2 raises); issue 24 (behaviours no "
                    "clause covered)"}


class SyncBatchNorm(_family.SyncBatchNorm):
    ranks = (2, 3, 4, 5)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
