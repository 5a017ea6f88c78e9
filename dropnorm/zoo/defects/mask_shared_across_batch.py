"""One mask of shape x.shape[1:] is drawn and broadcast over the batch (a noise
shape of (1, ...)): every sample loses the same units. Violates DO-TRAIN-04."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-04", "summary": "one mask is broadcast over the batch axis",
          "source": "plausible: a noise_shape of (1, *x.shape[1:]), as Keras' Dropout(noise_shape=...) allows"}


class _BatchBroadcastMask:
    def mask_shape(self, x):
        return (1,) + tuple(x.shape[1:]) if x.dim() > 1 else x.shape


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_BatchBroadcastMask)
