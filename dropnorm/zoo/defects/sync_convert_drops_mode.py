"""convert_sync_batchnorm returns a layer in training mode whatever the mode of the layer it converts: a
BatchNorm frozen in eval for fine-tuning trains its statistics again after the conversion. Violates
BN-SYNC-01."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects import _family

DEFECT = {"clause": "BN-SYNC-01", "summary": "convert_sync_batchnorm does not carry the training flag",
          "source": "https://github.com/pytorch/pytorch/pull/111998 (also open-mmlab/mmengine#1624, "
                    "huggingface/pytorch-image-models#2423)"}


class SyncBatchNorm(_family.SyncBatchNorm):
    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        out = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        out.carry(module)
        return out


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers()
