"""Shared helpers of the BatchNorm-family defects (issue 15): scratch's BatchNorm with torch.nn's reset
methods, a lazy variant and a single-process SyncBatchNorm, each written from spec/clauses.toml
(BN-RESET-01, BN-LAZY-01, BN-SYNC-01). dropnorm/zoo/scratch.py has none of them, so a defect module
builds them here and changes one step."""
import torch

from dropnorm.zoo import scratch


class Resettable:
    """torch.nn's reset_running_stats / reset_parameters (BN-RESET-01)."""

    @torch.no_grad()
    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    @torch.no_grad()
    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.fill_(1)
            self.bias.zero_()


class Lazy:
    """num_features from the first input: the layer is rebuilt as BatchNormNd(C) with the same keywords,
    keeping its mode, then `materialized()` runs (BN-LAZY-01)."""

    def __init__(self, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        self._lazy = dict(eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats)
        super().__init__(1, **self._lazy)
        self._materialized = False

    def materialized(self):
        """After the rebuild: nothing more (a defect overrides it)."""

    def forward(self, x):
        if not self._materialized:
            if x.dim() < 2:
                raise ValueError(f"{type(self).__name__} needs (N, C, ...) input, got shape {tuple(x.shape)}")
            lazy, training = self._lazy, self.training
            super().__init__(int(x.shape[1]), **lazy)
            self._lazy, self._materialized = lazy, True
            self.train(training)
            self.materialized()
        return super().forward(x)


class SyncBatchNorm(scratch._BatchNorm):
    """One process, no process group: synchronisation over a world of size 1 is the identity, so it is
    scratch's BatchNorm on any input of rank >= 2 (BN-SYNC-01)."""

    ranks = (2, 3, 4, 5, 6)  # any rank >= 2, as torch.nn.SyncBatchNorm (the tests go up to 6)

    def carry(self, source):
        """The state convert_sync_batchnorm carries over."""
        if source.affine:
            self.weight, self.bias = source.weight, source.bias
        self.running_mean, self.running_var = source.running_mean, source.running_var
        self.num_batches_tracked = source.num_batches_tracked

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        out = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        out.carry(module)
        out.train(module.training)
        return out


def lazy_classes(batchnorm_classes, mixin=None):
    """LazyBatchNorm1d/2d/3d from a module's BatchNorm1d/2d/3d (with an optional defect mixin first)."""
    bases = (mixin,) if mixin is not None else ()
    return tuple(type(f"Lazy{cls.__name__}", bases + (Lazy, cls), {"__module__": cls.__module__})
                 for cls in batchnorm_classes)
