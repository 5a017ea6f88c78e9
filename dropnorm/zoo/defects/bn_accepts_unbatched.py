"""BatchNorm2d and BatchNorm3d accept an unbatched (C, H, W) / (C, D, H, W) input, normalising it as a
batch of one, where torch.nn documents (N, C, H, W) and (N, C, D, H, W) only and raises: a model that
drops its batch axis by mistake trains on without an error. Violates BN-API-03 (round-3 blind probe
bn2d_accepts_unbatched_3d escaped: the rank check's 3-D case had a leading size that was not C)."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-API-03", "summary": "an unbatched input of rank one below the documented one is accepted",
          "source": "blind probe round 3 (issue 22): bn2d_accepts_unbatched_3d"}


class _AcceptsUnbatched:
    def forward(self, x):
        if len(self.ranks) == 1 and x.dim() == self.ranks[0] - 1 and x.shape[0] == self.num_features:
            return super().forward(x.unsqueeze(0)).squeeze(0)
        return super().forward(x)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_AcceptsUnbatched)
