"""A from-scratch BatchNorm as textbooks and numpy code write it: no num_batches_tracked counter
(so no momentum=None), and the running variance averages the biased batch variance. Expected:
BN-TRAIN-03 names the biased running variance; the missing counter fails BN-TRAIN-05."""

from dropnorm.zoo import scratch
from dropnorm.zoo.build import layers


class _Textbook:
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        if momentum is None:
            raise ValueError("momentum=None (a cumulative average) is not supported")
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.num_batches_tracked = None  # no counter
        del self._buffers["num_batches_tracked"]

    def count(self):
        pass

    @staticmethod
    def running_var_sample(var, shape):
        return var


Dropout, Dropout2d = scratch.Dropout, scratch.Dropout2d
_, _, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_Textbook)
