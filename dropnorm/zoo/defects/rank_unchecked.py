"""BatchNorm1d/2d/3d accept any input rank from 2 to 5 (in PyTorch 0.3 the classes
were 'completely redundant as the size checks never get called'), so BatchNorm1d
silently normalises an image batch. Violates BN-API-03."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-API-03", "summary": "the input rank is not checked",
          "source": "https://github.com/mpc001/end-to-end-lipreading/issues/1 (also pytorch/pytorch#378)"}


class _AnyRank:
    ranks = (2, 3, 4, 5)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_AnyRank)
