"""`dropnorm audit-model TARGET`: the model checks (dropnorm/models/checks.py), the report and exit status.

Exit: 0 every MUST model clause that ran holds, 1 one fails or errs, 2 usage error (a TARGET that cannot be
loaded, an unknown check), 130 interrupted."""
from __future__ import annotations

import pathlib
import re
import sys
import time


# the check names (dropnorm.models.checks.CHECKS; tests/test_model_audit.py keeps them equal): a literal, so that
# building the `dropnorm` parser imports no torch
CHECK_NAMES = ("eval", "batch", "freeze", "fold", "export", "compile", "lowp", "shift", "mc")


def add_parser(sub):
    CHECKS = CHECK_NAMES
    p = sub.add_parser("audit-model", help="audit a whole model: eval, smallest batch, freezing, folding, export, "
                                           "compile, low precision, variance shift, MC dropout (MD-* clauses)")
    p.add_argument("target", metavar="TARGET", help="pkg.mod:build, path/file.py:build, torchvision:NAME, "
                   "timm:NAME or dropnorm:NAME (build() returns (model, example_input[, options]))")
    p.add_argument("--report-dir", help="default: reports/model-<target>/")
    p.add_argument("--freeze", metavar="MODULE:CALLABLE", help="your freeze recipe, a callable(model) (MD-FREEZE-01)")
    p.add_argument("--compile", action="store_true", help="also check torch.compile (MD-COMPILE-01; minutes on CPU)")
    p.add_argument("--no-export", action="store_true", help="skip the ONNX export check (MD-EXPORT-01)")
    p.add_argument("--checks", help=f"comma-separated subset of {','.join(CHECKS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return p


def cmd_audit_model(args, argv) -> int:
    from dropnorm.models import DEFAULT_CHECKS
    from dropnorm.models.checks import CHECKS, ModelAudit
    from dropnorm.models.report import write
    from dropnorm.models.target import TargetError, find_callable, load_target
    from dropnorm.zoo.models import catalogue
    try:
        checks = tuple(DEFAULT_CHECKS) if not args.checks else tuple(c.strip() for c in args.checks.split(","))
        unknown = sorted(set(checks) - set(CHECKS))
        if unknown:
            raise TargetError(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
        if args.compile and "compile" not in checks:
            checks += ("compile",)
        if args.no_export:
            checks = tuple(c for c in checks if c != "export")
        t0 = time.time()
        target = load_target(args.target, catalogue())
        if args.freeze:
            fn = find_callable(args.freeze, "--freeze")
            target.options["freeze"] = fn
    except TargetError as e:
        print(f"dropnorm audit-model: error: {e}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.report_dir or f"reports/model-{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.target)}")
    if not args.quiet:
        print(f"dropnorm audit-model {args.target}: {type(target.model).__name__}, example input "
              f"{[tuple(t.shape) for t in target.example]}; checks {', '.join(checks)}", flush=True)
    try:
        audit = ModelAudit(target, checks, args.seed).run()
    except TargetError as e:
        print(f"dropnorm audit-model: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    data = write(audit, out, argv)
    if not args.quiet:
        for cid, c in data["clauses"].items():
            print(f"  {cid:14} {c['level']:6} {c['status']:5}  " + ", ".join(f"{k}: {v}" for k, v in
                                                                             c["conditions"].items()))
        for cid, c in data["clauses"].items():
            for r in c["results"]:
                if r["status"] in ("fail", "error", "warn"):
                    print(f"  - {cid}/{r['condition']} {r['status']}: {r['message'][:300]}")
    print(f"{data['verdict']} ({time.time() - t0:.1f} s); report: {out}/report.md", flush=True)
    return data["exit"]
