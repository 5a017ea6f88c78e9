"""The model catalogue in `dropnorm selfcheck`: every pitfall model of dropnorm/zoo/models/ must be rejected on
its own clause and condition (a SHOULD clause: warned on) and its reproduction must exit 1 in a fresh process;
every correct model must pass every model clause that runs. Prints one line per model; returns 1 on a survivor,
a misattribution, a false alarm or a reproduction that does not exit 1."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dropnorm.models.checks import CHECKS, ModelAudit
from dropnorm.models.report import write
from dropnorm.models.target import as_target
from dropnorm.spec.models import model_clauses
from dropnorm.zoo.models import catalogue

CORRECT_CHECKS = ("eval", "batch", "freeze", "fold", "export", "lowp", "shift", "mc")


def model_selfcheck(out=sys.stdout) -> int:
    t0 = time.time()
    bad = []
    print(f"\n{'model':28} {'named clause/condition':36} {'caught on':44} {'seconds':>7} repro", file=out)
    with tempfile.TemporaryDirectory() as d:
        for name, e in catalogue().items():
            t = time.time()
            a = ModelAudit(as_target(e.build(), f"dropnorm:{name}"),
                           tuple(e.checks) if e.kind == "pitfall" and e.checks else CORRECT_CHECKS, 0).run()
            secs = time.time() - t
            flagged = sorted({f"{r.clause}/{r.condition}" for r in a.results if r.status in ("fail", "warn", "error")})
            if e.kind == "correct":
                verdict = "passes" if not flagged else f"FALSE ALARM {', '.join(flagged)}"
                print(f"{name:28} {'(correct)':36} {verdict:44} {secs:7.1f} -", file=out)
                if flagged:
                    bad.append(name)
                continue
            want = "warn" if model_clauses()[e.clause].level == "SHOULD" else "fail"
            own = any(r.clause == e.clause and r.condition == e.condition and r.status == want for r in a.results)
            data = write(a, Path(d) / name)
            script = data["reproductions"].get(f"{e.clause}/{e.condition}")
            code = subprocess.run([sys.executable, str(Path(d) / name / script)], capture_output=True,
                                  timeout=600).returncode if script else None
            print(f"{name:28} {e.clause + '/' + e.condition:36} {', '.join(flagged)[:44]:44} {secs:7.1f} "
                  f"{'-' if code is None else 'exit ' + str(code)}", file=out)
            if not own or code != 1:
                bad.append(name)
    n_p = sum(e.kind == "pitfall" for e in catalogue().values())
    print(f"model catalogue: {n_p - len([b for b in bad if catalogue()[b].kind == 'pitfall'])}/{n_p} pitfall models "
          f"rejected on their own clause with a reproduction that exits 1; "
          f"{sum(e.kind == 'correct' for e in catalogue().values()) - len([b for b in bad if catalogue()[b].kind == 'correct'])}"
          f"/{sum(e.kind == 'correct' for e in catalogue().values())} correct models pass; {time.time() - t0:.0f} s"
          + (f"; failing: {', '.join(bad)}" if bad else ""), file=out)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(model_selfcheck())
