"""The layer kinds an implementation may provide, and the clause layer each belongs to.

Each kind is built by one factory method of dropnorm.adapters.base.Implementation (FACTORY). The
channel-dropout kinds (Dropout1d, Dropout2d, Dropout3d) share the clauses of the "dropout2d" layer
(D2-*): one Bernoulli draw per (sample, channel), in the ranks of CHANNEL_RANKS. AlphaDropout and
FeatureAlphaDropout share the clauses of the "alphadropout" layer (AD-*).
"""

# the five kinds every adapter was written for first, then the rest of the family (issue 15);
# the order is the order in which reports list the kinds
CORE_KINDS = ("Dropout", "Dropout2d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
KINDS = CORE_KINDS + ("Dropout1d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")
LAYERS = ("dropout", "dropout2d", "alphadropout", "batchnorm")
KIND_LAYER = {"Dropout": "dropout", "Dropout1d": "dropout2d", "Dropout2d": "dropout2d", "Dropout3d": "dropout2d",
              "AlphaDropout": "alphadropout", "FeatureAlphaDropout": "alphadropout",
              "BatchNorm1d": "batchnorm", "BatchNorm2d": "batchnorm", "BatchNorm3d": "batchnorm"}
LAYER_KINDS = {layer: tuple(k for k in KINDS if KIND_LAYER[k] == layer) for layer in LAYERS}

# kind -> the Implementation method that constructs it (BatchNorm: batchnorm(dims, ...))
FACTORY = {"Dropout": "dropout", "Dropout1d": "dropout1d", "Dropout2d": "dropout2d", "Dropout3d": "dropout3d",
           "AlphaDropout": "alpha_dropout", "FeatureAlphaDropout": "feature_alpha_dropout",
           "BatchNorm1d": "batchnorm", "BatchNorm2d": "batchnorm", "BatchNorm3d": "batchnorm"}

# channel dropout: the documented input ranks, batched (N, C, *spatial) first, then the no-batch form
# (C, *spatial) where the class documents one ([PT] Dropout1d: (N, C, L) or (C, L); Dropout2d:
# (N, C, H, W) or (N, C, L), the latter read as batched, pytorch/pytorch#69801; Dropout3d:
# (N, C, D, H, W) or (C, D, H, W))
CHANNEL_KINDS = LAYER_KINDS["dropout2d"]
CHANNEL_RANKS = {"Dropout1d": {"batched": 3, "unbatched": 2},
                 "Dropout2d": {"batched": 4, "unbatched": None},
                 "Dropout3d": {"batched": 5, "unbatched": 4}}
ALPHA_KINDS = LAYER_KINDS["alphadropout"]


def spatial_dims(kind: str) -> int:
    """The number of spatial axes of a channel-dropout kind's batched input."""
    return CHANNEL_RANKS[kind]["batched"] - 2
