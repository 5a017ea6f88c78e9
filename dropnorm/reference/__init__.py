"""dropnorm's float64 numpy reference for Dropout and Batch Normalization.

One small, pure function per operation, written to read like the formulas of
spec/clauses.toml. Every function computes in float64 and returns float64;
bad parameters raise ValueError (or TypeError) naming the parameter and value.
"""
from dropnorm.reference.dropout import (
    channel_dropout_backward,
    channel_dropout_forward,
    dropout_backward,
    dropout_forward,
    mask_shape,
    sample_channel_mask,
    sample_mask,
    shared_axes_of,
)
from dropnorm.reference.batchnorm import (
    batchnorm_eval_backward,
    batchnorm_eval_forward,
    batchnorm_train_backward,
    batchnorm_train_forward,
    batch_statistics,
    debiased_running_update,
    running_update,
)

__all__ = [
    "sample_mask", "sample_channel_mask", "mask_shape", "shared_axes_of", "dropout_forward", "dropout_backward",
    "channel_dropout_forward", "channel_dropout_backward",
    "batch_statistics", "batchnorm_train_forward", "batchnorm_eval_forward",
    "running_update", "debiased_running_update", "batchnorm_train_backward", "batchnorm_eval_backward",
]
