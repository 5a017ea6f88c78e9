"""momentum is not validated: -0.5, 1.5 and NaN construct, and the running statistics
then diverge or turn NaN (what torch.nn.BatchNorm itself does; recorded as its
deviation). Violates BN-API-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-API-01", "summary": "momentum outside [0, 1] or NaN is accepted",
          "source": "torch.nn.BatchNorm2d 2.13 (spec/deviations/torch.toml, BN-API-01)"}


class _NoMomentumCheck:
    @staticmethod
    def check_momentum(momentum):
        pass


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_NoMomentumCheck)
