"""convert_sync_batchnorm copies weight, bias and the running statistics but not num_batches_tracked:
the converted layer counts from 0 again. Violates BN-SYNC-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects import _family

DEFECT = {"clause": "BN-SYNC-01", "summary": "convert_sync_batchnorm does not carry num_batches_tracked",
          "source": "https://github.com/NVIDIA/apex/pull/380 (apex.parallel.convert_syncbn_model)"}


class SyncBatchNorm(_family.SyncBatchNorm):
    def carry(self, source):
        if source.affine:
            self.weight, self.bias = source.weight, source.bias
        self.running_mean, self.running_var = source.running_mean, source.running_var


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
