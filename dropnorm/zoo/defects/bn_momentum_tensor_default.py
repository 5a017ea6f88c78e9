"""A momentum that is not a Python number (a 0-dim tensor from a schedule) falls back to the default 0.1: the
layer accepts it and silently trains other running statistics. Violates BN-MOMTENSOR-01."""
import numbers

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-MOMTENSOR-01", "summary": "a tensor momentum is replaced by the default 0.1",
          "source": "plausible: `momentum if isinstance(momentum, numbers.Real) else 0.1`, a type check that lets "
                    "the default through (issue 24)"}


class _TensorMomentumDefault:
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        if momentum is not None and not isinstance(momentum, numbers.Real):
            momentum = 0.1
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_TensorMomentumDefault)
