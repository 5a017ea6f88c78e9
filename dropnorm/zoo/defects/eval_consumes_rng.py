"""The mask is drawn before the mode is checked, so an eval call returns x but
advances the global generator. Violates DO-EVAL-02."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-EVAL-02", "summary": "eval calls draw (and discard) a mask from the global RNG",
          "source": "https://github.com/google/trax/pull/134 (dropout should need an rng only while training)"}


class _DrawFirst:
    def forward(self, x):
        self.draw_keep(self.mask_shape(x), x)
        return super().forward(x)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_DrawFirst)
