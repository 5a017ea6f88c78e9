"""Folding an eval BatchNorm into the preceding convolution or linear layer, float64 (clause BN-FOLD-01).

An eval BatchNorm after a layer z = conv(x, W) + b (or x W^T + b) is an affine map per output channel o:

    y_o = (z_o - rm_o) * s_o + beta_o,        s_o = gamma_o / sqrt(rv_o + eps)

so it folds into the layer:   W'_o = W_o * s_o,   b'_o = (b_o - rm_o) * s_o + beta_o,   y = conv(x, W') + b'.
(gamma = 1, beta = 0 without affine parameters; b = 0 for a layer without bias.)

The convolutions are cross-correlations with stride 1, no padding, dilation 1 and one group (torch.nn's
Conv1d/2d/3d with their defaults); Linear is y = x W^T + b over an (N, in_features) input. A transposed
convolution (torch.nn's ConvTranspose1d/2d/3d with their defaults: stride 1, no padding, one group) has
weight (in, out, *kernel): its output channels lie along weight dim 1, so it folds along dim 1,
W'[:, o] = W[:, o] s_o (torch: fuse_conv_bn_eval(..., transpose=True)); its forward is the full
correlation y[n, o, p] = sum_{c, k} x[n, c, p - k] W[c, o, k] + b_o, the valid cross-correlation of x
zero-padded by kernel - 1 with the kernel flipped and dims 0 and 1 swapped.
`fold_tolerance` is the derived bound of BN-FOLD-01 (the derivation is written next to it).
"""
from __future__ import annotations

import numpy as np

from dropnorm.reference import _validate as v

KINDS = {"Linear": 0, "Conv1d": 1, "Conv2d": 2, "Conv3d": 3,  # kind -> number of spatial axes
         "ConvTranspose1d": 1, "ConvTranspose2d": 2, "ConvTranspose3d": 3}


def transposed(kind: str) -> bool:
    """Whether `kind` is a transposed convolution (weight (in, out, *kernel), folded along dim 1)."""
    return kind.startswith("ConvTranspose")


def out_axis(kind: str) -> int:
    """The weight dim that holds the output channels: 1 for a transposed convolution, else 0."""
    return 1 if transposed(kind) else 0


def _kind(kind: str) -> int:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind]


def _bn(out_channels: int, running_mean, running_var, eps, gamma, beta):
    rm = v.per_channel("running_mean", running_mean, out_channels)
    rv = v.per_channel("running_var", running_var, out_channels)
    if np.any(rv < 0):
        raise ValueError(f"running_var must be >= 0, got {rv}")
    eps = float(eps)
    if not (eps > 0 and np.isfinite(eps)):
        raise ValueError(f"eps must be positive and finite, got {eps!r}")
    g = np.ones(out_channels) if gamma is None else v.per_channel("gamma", gamma, out_channels)
    b = np.zeros(out_channels) if beta is None else v.per_channel("beta", beta, out_channels)
    return rm, rv, eps, g, b


def _weight(kind, weight, bias):
    d = _kind(kind)
    w = v.float_array("weight", weight)
    if w.ndim != d + 2:
        order = "(in, out, *kernel)" if transposed(kind) else "(out, in, *kernel)"
        raise ValueError(f"{kind} weight must have {d + 2} dims {order}, got shape {w.shape}")
    out = w.shape[out_axis(kind)]
    b = np.zeros(out) if bias is None else v.per_channel("bias", bias, out)
    return d, w, b


def scale(running_var, eps, gamma) -> np.ndarray:
    """s = gamma / sqrt(rv + eps), per output channel."""
    return np.asarray(gamma, np.float64) / np.sqrt(np.asarray(running_var, np.float64) + float(eps))


def fold_params(kind: str, weight, bias, running_mean, running_var, eps, gamma=None, beta=None):
    """(W', b'): W'_o = W_o s_o, b'_o = (b_o - rm_o) s_o + beta_o, with s = gamma / sqrt(rv + eps).
    weight has shape (out, in) for Linear, (out, in, *kernel) for ConvNd and (in, out, *kernel) for
    ConvTransposeNd (folded along dim 1); bias None means no bias, gamma/beta None mean affine=False."""
    d, w, b = _weight(kind, weight, bias)
    rm, rv, eps, g, beta_ = _bn(w.shape[out_axis(kind)], running_mean, running_var, eps, gamma, beta)
    s = scale(rv, eps, g)
    shape = [1] * (d + 2)
    shape[out_axis(kind)] = -1
    return w * s.reshape(shape), (b - rm) * s + beta_


def layer_forward(kind: str, x, weight, bias=None) -> np.ndarray:
    """Linear (x W^T + b), ConvNd (valid cross-correlation, stride 1) or ConvTransposeNd (full correlation,
    stride 1: the ConvNd of x zero-padded by kernel - 1 with the flipped kernel, dims 0 and 1 swapped) in float64."""
    d, w, b = _weight(kind, weight, bias)
    x = v.float_array("x", x)
    if transposed(kind):
        if x.ndim != d + 2 or x.shape[1] != w.shape[0]:
            raise ValueError(f"{kind}: x must have shape (N, {w.shape[0]}, *spatial) with {d} spatial axes, "
                             f"got {x.shape}")
        pad = [(0, 0), (0, 0)] + [(k - 1, k - 1) for k in w.shape[2:]]
        w_conv = np.flip(w, axis=tuple(range(2, 2 + d))).swapaxes(0, 1)
        return layer_forward(f"Conv{d}d", np.pad(x, pad), w_conv, b)
    if x.ndim != d + 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"{kind}: x must have shape (N, {w.shape[1]}{', *spatial' if d else ''}) with "
                         f"{d} spatial axes, got {x.shape}")
    if d == 0:
        return x @ w.T + b
    kernel = w.shape[2:]
    if any(n < k for n, k in zip(x.shape[2:], kernel)):
        raise ValueError(f"{kind}: spatial size {x.shape[2:]} smaller than the kernel {kernel}")
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(2, 2 + d)))
    # win: (N, C_in, *out_spatial, *kernel); contract C_in and the kernel axes with W (C_out, C_in, *kernel)
    letters = "ijk"[:d]
    y = np.einsum(f"nc{'pqr'[:d]}{letters},oc{letters}->no{'pqr'[:d]}", win, w)
    return y + b.reshape((1, -1) + (1,) * d)


def conv_bn_eval(kind: str, x, weight, bias, running_mean, running_var, eps, gamma=None, beta=None) -> np.ndarray:
    """The unfolded composition: z = layer(x), then the eval BatchNorm (z - rm) / sqrt(rv + eps) * gamma + beta."""
    d, w, _b = _weight(kind, weight, bias)
    z = layer_forward(kind, x, weight, bias)
    rm, rv, eps, g, beta_ = _bn(w.shape[out_axis(kind)], running_mean, running_var, eps, gamma, beta)
    sh = (1, -1) + (1,) * d
    return (z - rm.reshape(sh)) / np.sqrt(rv.reshape(sh) + eps) * g.reshape(sh) + beta_.reshape(sh)


def gamma_n(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): the bound of n successive relative roundings [H02, 3.4]."""
    if n * u >= 1:
        raise ValueError(f"gamma_n undefined for n u = {n * u} >= 1")
    return n * u / (1 - n * u)


# Unit roundoffs u = 2^-p (round to nearest) of the dtypes BN-FOLD-01 is checked in.
UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24}

# Derivation of the BN-FOLD-01 bounds ([H02] model fl(a op b) = (a op b)(1 + d), |d| <= u; gamma_n as above).
# The inputs (x, W, b, rm, rv, gamma, beta) are exactly representable in the dtype; eps is a Python float
# that an implementation may round to the dtype (one more relative error in rv + eps).
#
#   s = gamma / sqrt(rv + eps):  eps rounded (u) and the sum (u) give rv + eps within 2u relative, halved by
#       the square root (u), plus sqrt (u), the reciprocal or division (u): s within FOLD_S_ROUNDINGS = 4
#       roundings (rsqrt as one operation is fewer).
#   W' = W s: one more product (u) and a final conversion to the dtype if computed wider (u):
#       |W'_impl - W'| <= gamma_{FOLD_W_ROUNDINGS}(u) |W'|, FOLD_W_ROUNDINGS = 6.
#   b' = (b - rm) s + beta: b - rm (u relative to |b - rm|), s (4), the product(s) by s or r and gamma (2),
#       + beta (u on the sum): |b'_impl - b'| <= gamma_{FOLD_B_ROUNDINGS}(u) (|b - rm| |s| + |beta|),
#       FOLD_B_ROUNDINGS = 8 (1 + 4 + 2 + 1).
#   y = conv(x, W'_impl) + b'_impl over K = C_in * prod(kernel) products per output: any summation order
#       gives |fl(sum) - sum| <= gamma_K sum |x_j||W'_impl,j| [H02, 3.1], and W'_impl's own error adds
#       gamma_6 sum |x_j||W'_j|, the bias b'_impl gamma_8 B, the last addition u |y|. With
#       A = sum_j |x_j| |W_j| |s| (conv(|x|, |W|) |s|, the size of the folded products) and
#       B = |b - rm| |s| + |beta| (the size of the folded bias):
#           |y_folded - y| <= gamma_{K + FOLD_Y_EXTRA}(u) (A + B),   FOLD_Y_EXTRA = 8 (6 + 1 + 1, the bias's 8
#           covered by gamma_{K+8} >= gamma_8 since K >= 1).
#   The reference y = conv_bn_eval (unfolded, float64) has its own error: the layer's sum gamma_{K+1}
#       (the bias add), z - rm (u), the division by sqrt(rv + eps) (3), times gamma (u), + beta (u):
#       gamma_{K + 7}(u64) (A + B). It is added to the bound: it matters only for float64 implementations
#       (for float32 it is 2^-29 times smaller than the implementation's term).
# Large |rm| makes B large against |y| (the folded bias absorbs -rm s, which the products cancel): that
# loss is inherent to folding (and to the unfolded z - rm alike), not slack of the bound.
# Underflow (found by the first soak with working fresh seeds, Dec 7: running_mean -1.7e-40 gave a subnormal
# b' = 5.8e-42 off by 5.5e-46 against a relative bound of 2.8e-48): the model fl(a op b) = (a op b)(1 + d) holds
# only above the normal range; below it a rounding adds an absolute error |e| <= eta = smallest subnormal / 2
# (2^-150 in float32; Higham, Accuracy and Stability, 2.2). Each rounding's eta is carried by the factors applied
# after it: in W' = W s an eta in s is multiplied by |W|: <= FOLD_W_ROUNDINGS eta (1 + |W|); in
# b' = (b - rm) s + beta an eta in s by |b - rm|, one in b - rm by |s|: <= FOLD_B_ROUNDINGS eta (1 + |s| + |b - rm|);
# the folded layer's output carries the weight floor times |x| summed like the layer, the bias floor, and an eta
# for each of its K products and the sums: (K + FOLD_Y_EXTRA) eta. Added to the relative bounds below.
FOLD_W_ROUNDINGS = 6
FOLD_B_ROUNDINGS = 8
FOLD_Y_EXTRA = 8
FOLD_REF_EXTRA = 7


def fold_bounds(kind: str, x, weight, bias, running_mean, running_var, eps, gamma=None, beta=None, *,
                dtype: str) -> dict:
    """Element-wise bounds of BN-FOLD-01 for an implementation folding in `dtype` (float32 or float64):
    {"weight": bound on |W'_impl - W'|, "bias": on |b'_impl - b'|, "output": on |y_folded - y|}, against
    fold_params and conv_bn_eval computed here in float64. The derivation is written above."""
    if dtype not in UNIT_ROUNDOFF:
        raise ValueError(f"BN-FOLD-01 bounds are derived for {sorted(UNIT_ROUNDOFF)}, got {dtype!r}")
    u, u64 = UNIT_ROUNDOFF[dtype], UNIT_ROUNDOFF["float64"]
    d, w, b = _weight(kind, weight, bias)
    rm, rv, eps_, g, beta_ = _bn(w.shape[out_axis(kind)], running_mean, running_var, eps, gamma, beta)
    s = np.abs(scale(rv, eps_, g))
    w_fold, _ = fold_params(kind, weight, bias, running_mean, running_var, eps, gamma, beta)
    # K: the products summed per output, C_in * prod(kernel) (a transposed convolution sums at most as many;
    # the zero padding adds exact zero products)
    k = int(np.prod(w.shape)) // w.shape[out_axis(kind)]
    sh = (1, -1) + (1,) * d
    a = layer_forward(kind, np.abs(v.float_array("x", x)), np.abs(w)) * s.reshape(sh)
    b_size = np.abs(b - rm) * s + np.abs(beta_)
    wb = gamma_n(FOLD_W_ROUNDINGS, u) + (gamma_n(FOLD_W_ROUNDINGS, u64) if dtype == "float64" else 0.0)
    bb = gamma_n(FOLD_B_ROUNDINGS, u) + (gamma_n(FOLD_B_ROUNDINGS, u64) if dtype == "float64" else 0.0)
    yb = gamma_n(k + FOLD_Y_EXTRA, u) + gamma_n(k + FOLD_REF_EXTRA, u64)
    eta = float(np.finfo(dtype).smallest_subnormal) / 2  # the underflow floor (written above FOLD_W_ROUNDINGS)
    w_floor = FOLD_W_ROUNDINGS * eta * (1 + np.abs(w))
    b_floor = FOLD_B_ROUNDINGS * eta * (1 + s + np.abs(b - rm))
    y_floor = (layer_forward(kind, np.abs(v.float_array("x", x)), w_floor) + b_floor.reshape(sh)
               + (k + FOLD_Y_EXTRA) * eta)
    return {"weight": wb * np.abs(w_fold) + w_floor, "bias": bb * b_size + b_floor,
            "output": yb * (a + b_size.reshape(sh)) + y_floor}
