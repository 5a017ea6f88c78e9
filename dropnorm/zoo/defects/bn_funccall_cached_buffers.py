"""The running statistics are updated through references cached at construction (self._stats), not through
the attributes: torch.func.functional_call swaps the attributes for the tensors passed in, but the update still
lands on the layer's own buffers, and the passed-in buffers stay stale. Violates BN-FUNCCALL-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-FUNCCALL-01", "summary": "functional_call updates the module's own buffers, not the ones "
                                                 "passed in",
          "source": "plausible: buffers cached in a tuple at __init__ for a fused update kernel (issue 24)"}


class _CachedBuffers:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stats = (self.running_mean, self.running_var, self.num_batches_tracked)

    @torch.no_grad()
    def update_running(self, mean, var, shape):
        rm, rv, t = self._stats
        t += 1
        if not self.carries_statistics(shape):
            return
        m = 1.0 / float(t) if self.momentum is None else self.momentum
        rm.copy_(self.blend(rm, mean, m).to(rm.dtype))
        rv.copy_(self.blend(rv, self.running_var_sample(var, shape), m).to(rv.dtype))


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_CachedBuffers)
