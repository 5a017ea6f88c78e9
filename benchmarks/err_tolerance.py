"""Error against tolerance of BatchNorm training outputs (issue 14): how tight the bounds are.

For random cases drawn like the suite's (shapes up to the large ones, eps log-uniform in
[1e-6, 1], channel offsets up to 3 and spreads 10^U(-1, 1), affine parameters), float32
and float16 inputs, it runs torch.nn.BatchNormNd, dropnorm/zoo/scratch.py, the float64
reference rounded to the dtype, and the float32 one-pass clamped defect, and records
max |y - ref| / tolerance per case for
  new: bn_train_output as now (probabilistic summation bound, one-pass capped at half the digits),
  old: the worst-case gamma_n bound with the uncapped one-pass allowance (the former tolerance).
Usage: python benchmarks/err_tolerance.py [cases]   -> benchmarks/results/err_tolerance.json
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dropnorm import reference as ref
from dropnorm.suite import inputs
from dropnorm.spec import tolerances as tol
from dropnorm.spec.dtypes import round_to
from dropnorm.zoo import scratch
from dropnorm.zoo.defects import one_pass_variance_clamped as onepass

TORCH = {"float32": torch.float32, "float16": torch.float16}


def draw(rng):
    dims = int(rng.integers(1, 4))
    large = rng.random() < 0.1
    n_b = int(rng.integers(1, 65 if large else 6))
    c = int(rng.integers(1, 17 if large else 5))
    nsp = {1: int(rng.integers(0, 2)), 2: 2, 3: 3}[dims]
    sides = [int(rng.integers(1, 33 if large else 6)) for _ in range(nsp)]
    while n_b * int(np.prod(sides)) * c > 1 << 17:
        sides[int(np.argmax(sides))] //= 2
    if n_b * int(np.prod(sides)) < 2:
        n_b = 2
    return dims, (n_b, c, *sides), float(10 ** rng.uniform(-6, 0))


def run(cls_mod, dims, x, w, b, eps, dtype):
    layer = getattr(cls_mod, f"BatchNorm{dims}d")(x.shape[1], eps=eps)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w)); layer.bias.copy_(torch.from_numpy(b))
    layer.train()
    with torch.no_grad():
        return layer(torch.from_numpy(x).to(TORCH[dtype])).double().numpy()


def main(cases: int = 300):
    rng = np.random.default_rng(14)
    out = {}
    t0 = time.time()
    for dtype in ("float32", "float16"):
        ratios = {k: {"new": [], "old": []} for k in ("torch", "scratch", "reference", "one_pass_clamped")}
        for _ in range(cases):
            dims, shape, eps = draw(rng)
            seed = int(rng.integers(0, 2 ** 31))
            x = inputs.channels(seed, shape, dtype, offset=3.0)
            w = inputs.vector(seed + 1, shape[1], "float32", loc=1.0).astype(np.float32)
            b = inputs.vector(seed + 2, shape[1], "float32", scale=2.0).astype(np.float32)
            exact = ref.batchnorm_train_forward(x, w, b, eps)
            new, _ = tol.bn_train_output(x, w, b, eps, dtype)
            old, _ = tol.bn_train_output(x, w, b, eps, dtype, probabilistic=False, cap=False)
            ys = {"torch": run(torch.nn, dims, x, w, b, eps, dtype), "scratch": run(scratch, dims, x, w, b, eps, dtype),
                  "reference": round_to(exact, dtype), "one_pass_clamped": run(onepass, dims, x, w, b, eps, dtype)}
            for k, y in ys.items():
                err = np.abs(y - exact)
                ratios[k]["new"].append(float(np.max(err / new)))
                ratios[k]["old"].append(float(np.max(err / old)))
        out[dtype] = {k: {t: {"median": float(np.median(v)), "p90": float(np.quantile(v, 0.9)), "max": float(np.max(v)),
                              "over_1": int(np.sum(np.asarray(v) > 1))}
                          for t, v in r.items()} for k, r in ratios.items()}
    out["cases_per_dtype"] = cases
    out["seconds"] = round(time.time() - t0, 1)
    path = Path(__file__).parent / "results" / "err_tolerance.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
