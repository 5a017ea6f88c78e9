"""The layer kinds an implementation may provide, and the clause layer each belongs to."""

KINDS = ("Dropout", "Dropout2d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
KIND_LAYER = {"Dropout": "dropout", "Dropout2d": "dropout2d",
              "BatchNorm1d": "batchnorm", "BatchNorm2d": "batchnorm", "BatchNorm3d": "batchnorm"}
LAYER_KINDS = {layer: tuple(k for k in KINDS if KIND_LAYER[k] == layer) for layer in ("dropout", "dropout2d",
                                                                                      "batchnorm")}
