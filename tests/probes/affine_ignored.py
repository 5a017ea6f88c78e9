"""A BatchNorm that accepts affine=True and reports `affine == True`, but creates no weight or bias
and applies no affine map (torch.nn's layers otherwise). Expected: not conformant, BN-TRAIN-01
(affine parameters) failing; its affine=False examples still audited."""
import torch.nn as nn

Dropout, Dropout2d = nn.Dropout, nn.Dropout2d


class _AffineIgnored:
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine=False, track_running_stats=track_running_stats)
        self.affine = affine


class BatchNorm1d(_AffineIgnored, nn.BatchNorm1d):
    pass


class BatchNorm2d(_AffineIgnored, nn.BatchNorm2d):
    pass


class BatchNorm3d(_AffineIgnored, nn.BatchNorm3d):
    pass
