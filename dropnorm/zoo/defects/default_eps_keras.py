"""The default eps is Keras's 1e-3 in a layer that documents torch's conventions (1e-5): code ported
between frameworks keeps the other's default. Violates BN-DEFAULT-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-DEFAULT-01", "summary": "default eps 1e-3 (Keras's) under torch's convention of 1e-5",
          "source": "plausible: a port from Keras keeps BatchNormalization(epsilon=1e-3); "
                    "docs/conventions.md lists the frameworks' defaults"}


class _KerasEps:
    def __init__(self, num_features, eps=1e-3, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_KerasEps)
