"""The running-statistics update is wrapped in try/except RuntimeError (to make the layer 'work' under
torch.func.vmap): a training BatchNorm under vmap returns instead of raising, and its running statistics and
counter silently miss the update. Violates BN-VMAP-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-VMAP-01", "summary": "training under vmap silently skips the running update",
          "source": "plausible: a workaround for 'Batch norm got a batched tensor as input while the running_mean or "
                    "running_var ... were not batched' that swallows the error (issue 24)"}


class _UpdateSwallowed:
    def update_running(self, mean, var, shape):
        try:
            super().update_running(mean, var, shape)
        except RuntimeError:
            pass


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_UpdateSwallowed)
