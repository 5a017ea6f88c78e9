"""A hand-written backward that always uses the training formula, subtracting the
per-channel means of dy and dy * xhat even in eval mode, where the statistics are
constants and the Jacobian is diagonal. Violates BN-GRAD-03."""
from dropnorm.zoo.build import layers
from dropnorm.zoo.defects._kernels import Normalize

DEFECT = {"clause": "BN-GRAD-03", "summary": "eval-mode backward projects out mean(dy) and mean(dy xhat)",
          "source": "plausible: a custom backward written for training only (cf. torch/torch7#1169)"}


class _TrainingBackwardAlways:
    def normalize(self, xw, mean, var):
        return Normalize.apply(xw, mean.detach(), var.detach(), self.eps, True)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_TrainingBackwardAlways)
