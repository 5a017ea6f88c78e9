"""The mask is drawn once per layer and input shape and then reused on every call,
like a JAX/Flax dropout key that is never split between steps. Violates DO-TRAIN-05."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-05", "summary": "the first mask is cached and reused on later calls",
          "source": "https://github.com/google/flax/pull/2631 (review: split a new dropout key every step)"}


class _CachedMask:
    def draw_keep(self, shape, x):
        cached = getattr(self, "_cached_keep", None)
        if cached is None or cached.shape != shape:
            self._cached_keep = cached = super().draw_keep(shape, x)
        return cached


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_CachedMask)
