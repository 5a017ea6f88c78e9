"""Blind probe: BatchNorm1d that reads a non-contiguous input's storage as if it were contiguous.

Defect: for an input that is neither contiguous nor channels-last-like (a transposed or strided
view), the kernel indexes the underlying storage from the view's storage offset with contiguous
strides, ignoring the view's actual strides: it normalises the wrong elements (and the running
statistics come from them). Contiguous inputs go through torch unchanged. When the storage is too
small for that (broadcast/expanded views) the layer falls back to a copy.

Inspired by: extension kernels that take `input.data_ptr()` and index it as a dense array without
calling `.contiguous()` (the TORCH_CHECK(x.is_contiguous()) that PyTorch's C++/CUDA extension tutorial
recommends, https://pytorch.org/tutorials/advanced/cpp_extension.html, is the guard they omit).

Region: BatchNorm1d, non-contiguous (transposed, sliced, permuted) 2-D or 3-D inputs, every mode.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch

import blindprobe_util as U


def _dense_strides(shape):
    st, acc = [], 1
    for s in reversed(shape):
        st.append(acc)
        acc *= s
    return tuple(reversed(st))


class BatchNorm1d(torch.nn.BatchNorm1d):
    def forward(self, x):
        if x.dim() in (2, 3) and x.numel() and not x.is_contiguous():
            avail = x.untyped_storage().nbytes() // x.element_size() - x.storage_offset()
            if avail >= x.numel():
                x = torch.as_strided(x, x.shape, _dense_strides(x.shape), x.storage_offset())
        return super().forward(x)


def confirm():
    torch.manual_seed(0)
    base = torch.randn(4, 6, 3) * torch.arange(1, 7).view(1, 6, 1)  # channel c has std c+1 before transposing
    x = base.transpose(1, 2).contiguous().transpose(1, 2)  # same values, non-contiguous layout
    p, t = BatchNorm1d(6).train(), torch.nn.BatchNorm1d(6).train()
    d = U.max_abs(p(x), t(x))
    dv = float((p.running_var - t.running_var).abs().max())
    d_c = U.max_abs(BatchNorm1d(6).train()(base), torch.nn.BatchNorm1d(6).train()(base))
    xs = torch.randn(8, 12)[:, ::2]
    d_s = U.max_abs(BatchNorm1d(6).train()(xs), torch.nn.BatchNorm1d(6).train()(xs))
    return {"observable": d > 0.1 and d_s > 0.1,
            "detail": f"(4,6,3) transposed-storage view: max |y - torch| {d:.3g}, running_var diff {dv:.3g}; "
                      f"(8,12)[:, ::2] slice: {d_s:.3g}; contiguous input: {d_c:.2g}"}


U.reexport(globals())
