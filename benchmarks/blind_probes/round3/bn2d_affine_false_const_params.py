"""Blind probe: BatchNorm2d(affine=False) that still registers weight/bias (frozen ones/zeros).

Defect: with affine=False the layer registers weight = ones and bias = zeros as Parameters with
requires_grad=False instead of registering them as None. Outputs are torch's (up to the sign of
zero: x*1 + 0 turns -0.0 into +0.0); but `m.weight is None` is False, named_parameters() and
state_dict() have two extra entries, a torch affine=False state_dict fails strict loading (missing
keys), and optimisers built from parameters() receive them.

Inspired by: backends whose fused BN op requires scale and offset tensors (cuDNN
cudnnBatchNormalizationForwardTraining's bnScale/bnBias, TensorFlow's FusedBatchNorm), wrapped by
modules that materialise constant ones/zeros for affine=False, versus torch's
`register_parameter("weight", None)` (torch/nn/modules/batchnorm.py, _NormBase.__init__).

Region: BatchNorm2d, affine=False: parameter registration, state_dict keys/loading, weight/bias
attributes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


class BatchNorm2d(torch.nn.BatchNorm2d):
    def __init__(self, num_features, *args, **kwargs):
        super().__init__(num_features, *args, **kwargs)
        if not self.affine:
            ref = self.running_mean if self.running_mean is not None else torch.empty(num_features)
            self.weight = torch.nn.Parameter(torch.ones(num_features, dtype=ref.dtype, device=ref.device),
                                             requires_grad=False)
            self.bias = torch.nn.Parameter(torch.zeros(num_features, dtype=ref.dtype, device=ref.device),
                                           requires_grad=False)


def confirm():
    p, t = BatchNorm2d(3, affine=False), torch.nn.BatchNorm2d(3, affine=False)
    np_, nt = [n for n, _ in p.named_parameters()], [n for n, _ in t.named_parameters()]
    try:
        BatchNorm2d(3, affine=False).load_state_dict(t.state_dict())
        err = None
    except RuntimeError as e:
        err = str(e).splitlines()[-1].strip()[:90]
    torch.manual_seed(0)
    x = torch.randn(4, 3, 3, 3)
    d = U.max_abs(p.train()(x), t.train()(x))
    return {"observable": np_ != nt and err is not None,
            "detail": f"affine=False: named_parameters probe {np_} vs torch {nt}; weight is None: probe {p.weight is None}, "
                      f"torch {t.weight is None}; strict load of torch's state_dict: {err}; output diff {d:.2g}"}


U.reexport(globals())
