#!/usr/bin/env python3
"""Audit the model clients of issue 27 with `dropnorm audit-model` and append one line per audit to
benchmarks/results/model-clients.jsonl (never overwritten): target, commit, torch/torchvision/timm versions,
wall time, load average before, verdict, exit, per-clause status, smallest training batch, structure counts.

  python benchmarks/model_clients.py [--python PY] [--compile] [TARGET ...]   run (default: the five clients)
  python benchmarks/model_clients.py --table [--code COMMIT]...                print the README table
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "model-clients.jsonl"
CLIENTS = ["torchvision:resnet18", "torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0",
           "timm:resnet10t", "dropnorm:dropoutnet_seed004"]


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()   # this script's own output aside
    return head + ("+dirty" if dirty else "")


def run(python: str, target: str, extra: list) -> dict:
    with tempfile.TemporaryDirectory() as d:
        load = os.getloadavg()[0]
        t = time.time()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.run([python, "-m", "dropnorm", "audit-model", target, "--report-dir", d, "--quiet", *extra],
                           capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.time() - t
        try:
            rep = json.loads((pathlib.Path(d) / "report.json").read_text())
        except FileNotFoundError:
            return {"target": target, "exit": p.returncode, "error": (p.stderr or p.stdout).strip().splitlines()[-1:],
                    "wall_s": round(wall, 1), "commit": commit()}
    env = rep["environment"]
    versions = subprocess.run([python, "-c", "import importlib.metadata as m\nfor d in ('torch','torchvision','timm','onnxruntime'):\n"
                               "  try: print(d, m.version(d))\n  except Exception: print(d, '-')"],
                              capture_output=True, text=True).stdout.split()
    return {"target": target, "commit": commit(), "versions": dict(zip(versions[::2], versions[1::2])),
            "threads": env.get("threads") or env.get("torch_threads"), "load_before": round(load, 2),
            "wall_s": round(wall, 1), "timings_s": rep["timings_s"], "exit": rep["exit"], "verdict": rep["verdict"],
            "clauses": {k: v["status"] for k, v in rep["clauses"].items()},
            "warnings_and_failures": [f"{k}/{r['condition']} {r['status']}: {r['message'][:300]}"
                                      for k, v in rep["clauses"].items() for r in v["results"]
                                      if r["status"] in ("fail", "warn", "error")],
            "measured": [f"{k}/{r['condition']}: {r['message'][:300]}" for k, v in rep["clauses"].items()
                         for r in v["results"] if r["status"] == "pass" and r.get("tolerance") is not None
                         or r["status"] == "pass" and "worst" in r["message"]],
            "info": [f"{k}/{r['condition']}: {r['message'][:200]}" for k, v in rep["clauses"].items()
                     for r in v["results"] if r["status"] == "info"],
            "structure": {k: rep["structure"][k] for k in ("batchnorm_modules", "dropout_modules", "min_training_batch",
                                                           "traced", "functional_calls")}
            | {"fold_pairs": len(rep["structure"]["fold_pairs"]), "dropout_feeding_bn": rep["structure"]["dropout_feeding_bn"]},
            "checks": rep["checks"], "example_input": rep["example_input"]}


def table(codes: list) -> str:
    rows = [json.loads(x) for x in RESULTS.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if not codes or r["commit"].split("+")[0] in codes]
    out = ["| target | torch | BN / dropout modules | fold pairs | smallest training batch | verdict | wall time | of which compile | load avg. | code |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "verdict" not in r:
            out.append(f"| {r['target']} | - | - | - | - | could not run: {' '.join(r['error'])} | {r['wall_s']} s | - | {r['commit']} |")
            continue
        s = r["structure"]
        out.append(f"| {r['target']} | {r['versions'].get('torch')} | {s['batchnorm_modules']} / {s['dropout_modules']} | "
                   f"{s['fold_pairs']} | {s['min_training_batch']} | {r['verdict']} | {r['wall_s']:.0f} s "
                   f"| {str(round(r['timings_s']['compile'])) + ' s' if 'compile' in r['timings_s'] else 'not run'} | {r['load_before']} | {r['commit']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("targets", nargs="*")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--code", action="append", default=[])
    a = ap.parse_args(argv)
    if a.table:
        print(table(a.code))
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for t in a.targets or CLIENTS:
        r = run(a.python, t, ["--compile"] if a.compile else [])
        with RESULTS.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"{t}: {r.get('verdict', r.get('error'))} ({r['wall_s']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
