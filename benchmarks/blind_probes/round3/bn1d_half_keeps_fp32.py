"""Blind probe: BatchNorm1d that refuses to be converted to 16-bit (stays float32 under .half()).

Defect: `.half()`, `.bfloat16()` and `.to(torch.float16 / bfloat16)` leave the module's weight,
bias, running_mean and running_var in float32 (moving devices and float64 conversion still work),
so parameters(), state_dict() tensors and the dtype of running statistics differ from torch, whose
Module._apply casts every floating-point parameter and buffer. Forward values on 16-bit input are
close to torch (mixed-type BN computes in float32 anyway).

Inspired by: apex's `convert_network`/`network_to_half` which deliberately keeps BatchNorm layers in
float32 (https://github.com/NVIDIA/apex apex/fp16_utils/fp16util.py: `if isinstance(module,
torch.nn.modules.batchnorm._BatchNorm) and module.affine is True: continue`) baked into the layer's
own `_apply`, versus torch.nn.Module.half() (torch/nn/modules/module.py, _apply).

Region: BatchNorm1d, conversion to float16/bfloat16 (module.half(), .bfloat16(), .to(dtype)), and all
state read afterwards (parameter/buffer dtypes, state_dict, load into a torch half module).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U

LOW = (torch.float16, torch.bfloat16)


class BatchNorm1d(torch.nn.BatchNorm1d):
    def _apply(self, fn, recurse=True):
        def keep_fp32(t):
            out = fn(t)
            if t.is_floating_point() and t.dtype == torch.float32 and out.dtype in LOW:
                return out.float()
            return out
        return super()._apply(keep_fp32, recurse)


def confirm():
    p, t = BatchNorm1d(4).half(), torch.nn.BatchNorm1d(4).half()
    dts_p = {k: str(v.dtype) for k, v in p.state_dict().items() if v.is_floating_point()}
    dts_t = {k: str(v.dtype) for k, v in t.state_dict().items() if v.is_floating_point()}
    pb = BatchNorm1d(4).to(torch.bfloat16)
    torch.manual_seed(0)
    x = torch.randn(8, 4).half()
    d = U.max_abs(p.train()(x), t.train()(x))
    return {"observable": dts_p != dts_t and pb.weight.dtype == torch.float32,
            "detail": f".half(): state dtypes probe {dts_p} vs torch {dts_t}; .to(bfloat16) weight {pb.weight.dtype}; "
                      f"float16 forward diff {d:.2g}"}


U.reexport(globals())
