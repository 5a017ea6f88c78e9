"""eps is checked with `eps < 0`, so eps = 0 (and NaN) construct: a constant channel
then divides by zero. Violates BN-API-02."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-API-02", "summary": "eps = 0 passes the `eps < 0` check",
          "source": "plausible: off-by-one comparison (torch accepts eps <= 0 too: spec/deviations/torch.toml)"}


class _NonNegativeEps:
    @staticmethod
    def check_eps(eps):
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_NonNegativeEps)
