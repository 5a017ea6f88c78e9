"""The `dropnorm` command.

  dropnorm audit    audit an implementation and write its conformance report
  dropnorm clauses  list the spec's clauses
  dropnorm report   re-render report.md and report.html from a report.json
  dropnorm compare  what changed between two reports (exit 1 on a regression)
  dropnorm matrix   audit every installed implementation into one conformance matrix
  dropnorm selfcheck  the suite's kill rate on its defect catalogue (exit 1 on a survivor or false alarm)
  dropnorm audit-model  audit a whole model (Dropout/BatchNorm pitfalls, MD-* clauses)

Exit status: 0 success/conformant, 1 not conformant (or a regression), 2 usage
errors and implementations that cannot be loaded or tested, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from dropnorm import __version__
from dropnorm.adapters import bare_path_error
from dropnorm.errors import USER_ERRORS, UsageError

from dropnorm.suite import profiles
from dropnorm.spec import LAYERS, clauses


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other usage error
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from dropnorm.adapters import IMPL_HELP
    p = _Parser(prog="dropnorm", description="Conformance audits of Dropout and BatchNorm implementations.")
    p.add_argument("--version", action="version", version=f"dropnorm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    a = sub.add_parser("audit", help="audit an implementation and write its conformance report")
    a.add_argument("--impl", default="torch", help=IMPL_HELP)
    a.add_argument("--layer", action="append", default=[], choices=LAYERS,
                   help="audit only this layer's clauses (repeatable)")
    a.add_argument("--clause", action="append", default=[], metavar="ID", help="audit only this clause (repeatable)")
    a.add_argument("--profile", default=profiles.DEFAULT, choices=list(profiles.PROFILES),
                   help="quick (8 examples per test), ci (30, default), thorough (300, fresh seeds)")
    a.add_argument("--report-dir", help="default: reports/<implementation>-<version>-<device>/")
    a.add_argument("--jobs", default="auto", help="pytest-xdist workers: a number or 'auto' (default: one per CPU; one for a --clause selection)")
    a.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    a.add_argument("--seed", type=int, help="hypothesis seed (fresh examples, reproducible); default: derandomized")
    a.add_argument("--strict", action="store_true", help="SHOULD failures also make the audit non-conformant (as "
                   "plain pytest always does: it fails a test on any violated clause)")
    a.add_argument("--deviations", action="append", default=[], metavar="FILE",
                   help="TOML file of your own accepted deviations (format: spec/deviations/torch.toml)")
    a.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="one time limit for every test; a test over it has its worker killed and is reported as an "
                        "error (default: 20x the test's cost on torch, dropnorm/run/test_costs.json, at least 60 s and at "
                        "most 120 quick, 300 ci, 1800 thorough)")
    a.add_argument("--quiet", action="store_true", help="no progress lines")
    a.add_argument("--replay", choices=("failures", "all", "none"), default="failures",
                   help="after the audit, run reproduction scripts in fresh processes and report whether each "
                        "reproduces alone: each failure's (default), also each known defect's evidence (all), "
                        "or none")

    c = sub.add_parser("clauses", help="list the spec's clauses")
    c.add_argument("--layer", action="append", default=[], choices=LAYERS)
    c.add_argument("--json", action="store_true", help="machine-readable output")

    r = sub.add_parser("report", help="re-render report.md and report.html from DIR/report.json")
    r.add_argument("dir")

    m = sub.add_parser("compare", help="what changed between two reports (or a report directory's last two runs); "
                                       "exit 1 when a clause regressed or is no longer checked")
    m.add_argument("a", help="report directory or report.json (before); alone: a report directory, whose previous "
                             "run (DIR/previous) is compared with its latest")
    m.add_argument("b", nargs="?", help="report directory or report.json (after)")
    m.add_argument("--json", action="store_true")
    x = sub.add_parser("matrix", help="audit every installed implementation (or collect reports) into one matrix")
    x.add_argument("--impl", action="append", default=[], help="audit these (default: every installed one)")
    x.add_argument("--from", dest="sources", action="append", default=[], metavar="REPORT",
                   help="use this report directory or report.json instead of auditing (repeatable)")
    x.add_argument("--profile", default=profiles.DEFAULT, choices=list(profiles.PROFILES))
    x.add_argument("--jobs", default="auto")
    x.add_argument("--out", default="reports/matrix", help="where matrix.md, matrix.html and the reports go")
    x.add_argument("--python", action="append", default=[], metavar="PATH",
                   help="another venv's python (with dropnorm installed) for implementations not installed here "
                        "(repeatable; the first that has an implementation audits it)")
    x.add_argument("--paths", action="store_true",
                   help="also audit torch's execution paths (torch-compile, torch-functional, ...) as columns")
    x.add_argument("--timeout", type=float, help="per-test time limit in seconds, passed to each audit")
    x.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="audits at a time (default 1; each audit also runs --jobs pytest processes)")
    k = sub.add_parser("selfcheck", help="audit the defect catalogue and the correct variants: the suite's power")
    k.add_argument("--profile", default=profiles.DEFAULT, choices=list(profiles.PROFILES),
                   help="ci (default, derandomized) or thorough (300 examples, fresh seeds)")
    k.add_argument("--jobs", type=int, help="pytest processes at once (default: usable CPUs)")
    k.add_argument("--seed", type=int, help="hypothesis seed: other examples than the derandomized ones")
    k.add_argument("--no-models", action="store_true", help="skip the model catalogue (dropnorm/zoo/models/, "
                   "MD-* clauses; 1 to 7 min on 2 cores, by load)")
    from dropnorm.run.audit_model import add_parser as _model_parser   # issue 27: a whole model (MD-* clauses)
    _model_parser(sub)
    return p


def cmd_audit_model(args, argv) -> int:
    from dropnorm.run.audit_model import cmd_audit_model as run
    return run(args, argv)


def cmd_selfcheck(args, argv) -> int:
    from dropnorm.run.selfcheck import selfcheck
    return selfcheck(profile=args.profile, jobs=args.jobs, seed=args.seed, models=not args.no_models)


def cmd_matrix(args, argv) -> int:
    from dropnorm.run import matrix
    for spec in args.impl:
        wrong = bare_path_error(spec)
        if wrong:
            raise UsageError(wrong)
    out = pathlib.Path(args.out)
    if args.sources:
        reports, problems = [matrix.collect(s) for s in args.sources], {}
    else:
        chosen, problems = matrix.plan(args.impl, args.python, args.paths)
        reports, failed = matrix.audit_all(chosen, out, args.profile, args.jobs, args.timeout, args.parallel)
        problems.update(failed)
    if not reports:
        raise UsageError("no implementation could be audited: " + "; ".join(f"{k}: {v}" for k, v in problems.items()))
    matrix.write(out, reports, problems)
    print(f"wrote {out / 'matrix.md'} and {out / 'matrix.html'} ({len(reports)} implementations)")
    return 0


PREFLIGHT_TIMEOUT_S = 20  # one forward call per kind on a few values takes milliseconds; past this, the audit judges


def _preflight_problems(impl, timeout_s: float) -> dict[str, str]:
    """impl.preflight() in a forked child, so that the user's forward, which may hang holding the GIL, crash the
    process, print or change global state (tests/misbehaving/), never touches the audit's own process or
    console; {} when the child does not answer in time or dies (the audit's supervised workers then say what
    went wrong)."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child():
        try:
            # a child forked from a process that already ran parallel torch code (a test calling main() in a
            # pytest worker) hangs in the inherited OpenMP pool at its first parallel region: run on one thread
            import torch
            torch.set_num_threads(1)
        except Exception:  # noqa: BLE001 - without torch the user's forward cannot need it
            pass
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            send.send(impl.preflight())
        except BaseException:  # noqa: BLE001 - anything the user's code raises is the audit's to report
            send.send({})
        finally:
            os._exit(0)

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()
    try:
        return receive.recv() if receive.poll(timeout_s) else {}
    except EOFError:  # the child died before answering
        return {}
    finally:
        proc.kill()
        proc.join()


def preflight(spec: str, device: str, timeout_s: float = PREFLIGHT_TIMEOUT_S, quiet: bool = False) -> None:
    """Before the suite runs, one forward call per provided kind of a torch-module target: a forward that returns
    something other than a torch.Tensor (numpy arrays, lists) makes every test of that kind an error. When no
    provided kind returns a tensor that is one usage error (exit 2: nothing could be audited); when some do, one
    note names the others and the audit goes on as far as it can (their tests are errors). A target that cannot
    be loaded, or whose forward hangs or crashes, is left to the audit, which says why in its own words."""
    if not spec.startswith("torch-module:") or device != "cpu":
        return  # CUDA does not survive fork(); a non-tensor output is then an error in each test
    from dropnorm.adapters import load
    try:
        impl = load(spec, device=device)
    except Exception:  # noqa: BLE001 - loading runs the user's code; the audit reports what it raises
        return
    problems = _preflight_problems(impl, timeout_s)
    if not problems:
        return
    what = (f"{impl.describe()}: {'; '.join(problems.values())}; a torch-module layer's forward must return a "
            "torch.Tensor (README, 'Audit your own layers')")
    from dropnorm.spec.kinds import KINDS
    if set(problems) >= {k for k in KINDS if impl.provides(k)}:
        raise UsageError(what + ", so every test would be an error")
    if not quiet:
        print(f"dropnorm audit: note: {what}; the tests of {', '.join(problems)} will be errors", file=sys.stderr)


def cmd_audit(args, argv) -> int:
    from dropnorm.run.audit import audit
    from dropnorm.run.options import Options
    # --impl my_layers.py: a usage error that says what was meant, before anything is loaded
    wrong = bare_path_error(args.impl)
    if wrong:
        raise UsageError(wrong)
    preflight(args.impl, args.device, min(PREFLIGHT_TIMEOUT_S, args.timeout or PREFLIGHT_TIMEOUT_S), args.quiet)
    if args.impl.startswith("torch-module:") and not args.quiet:
        from dropnorm.spec import SPEC_DIR
        records = (SPEC_DIR / "deviations").resolve()
        for path in args.deviations:
            if pathlib.Path(path).resolve().parent == records:
                print(f"dropnorm audit: note: --deviations {path} is dropnorm's record of a framework: it never "
                      "covers your own classes; torch.nn's own classes in your file (by identity) are judged "
                      "under torch's record without it", file=sys.stderr)
    return audit(Options(impl=args.impl, layers=args.layer, clauses=args.clause, profile=args.profile,
                         report_dir=args.report_dir, jobs=args.jobs, device=args.device, seed=args.seed,
                         strict=args.strict, deviations=args.deviations, quiet=args.quiet,
                         timeout=args.timeout, replay=args.replay, argv=argv))


def cmd_clauses(args, argv) -> int:
    rows = [c for c in clauses().values() if not args.layer or c.layer in args.layer]
    if args.json:
        print(json.dumps([{"id": c.id, "layer": c.layer, "level": c.level, "title": c.title,
                           "statement": c.statement} for c in rows], indent=1))
    else:
        for c in rows:
            print(f"{c.id:14} {c.level:6} {c.layer:9} {c.title}")
    return 0


def cmd_report(args, argv) -> int:
    from dropnorm.report import files
    report = files.load_report(args.dir)
    directory = pathlib.Path(args.dir)
    directory = directory if directory.is_dir() else directory.parent
    files.render(directory, report)
    print(f"wrote {directory / 'report.md'} and {directory / 'report.html'}")
    return 0


def cmd_compare(args, argv) -> int:
    from dropnorm.report import compare, files
    before, after = (args.a, args.b) if args.b else files.last_two(args.a)
    a, b = files.load_report(before), files.load_report(after)
    diff = compare.compare(a, b)
    print(json.dumps(diff, indent=1) if args.json else compare.render(a, b, diff))
    return 1 if diff["regressed"] or diff["unchecked"] else 0


COMMANDS = {"audit": cmd_audit, "clauses": cmd_clauses, "report": cmd_report, "compare": cmd_compare,
            "matrix": cmd_matrix, "selfcheck": cmd_selfcheck, "audit-model": cmd_audit_model}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, argv)
    except USER_ERRORS as e:  # something the user must fix: one line, exit 2, never a traceback
        print(f"dropnorm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dropnorm clauses | head`: the reader left; end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
