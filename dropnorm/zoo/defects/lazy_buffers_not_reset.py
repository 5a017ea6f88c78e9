"""LazyBatchNormNd materialises its running variance without initialising it (torch.empty, here zeros):
an eval call before any training divides by sqrt(eps), and training averages towards 0 instead of 1.
Violates BN-LAZY-01."""
import torch

from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._family import Resettable, SyncBatchNorm, lazy_classes  # noqa: F401

DEFECT = {"clause": "BN-LAZY-01", "summary": "the lazy layer's running_var is materialised as 0, not 1",
          "source": "plausible: materialize() without reset_parameters() (torch's _LazyNormBase.initialize_parameters "
                    "calls it after materialising)"}


class _VarNotInitialised:
    @torch.no_grad()
    def materialized(self):
        if self.track_running_stats:
            self.running_var.zero_()


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=Resettable)
LazyBatchNorm1d, LazyBatchNorm2d, LazyBatchNorm3d = lazy_classes((BatchNorm1d, BatchNorm2d, BatchNorm3d),
                                                                 _VarNotInitialised)
