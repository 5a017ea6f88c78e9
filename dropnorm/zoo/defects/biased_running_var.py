"""The running variance averages the biased batch variance, without Bessel's n/(n-1)
(tinygrad, MLX and ARENA's BatchNorm2d all had this). Violates BN-TRAIN-03."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-TRAIN-03", "summary": "running_var updated with the biased variance",
          "source": "https://github.com/tinygrad/tinygrad/pull/807 (also ml-explore/mlx#3817, ARENA_3.0#415)"}


class _NoBessel:
    @staticmethod
    def running_var_sample(var, shape):
        return var


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_NoBessel)
