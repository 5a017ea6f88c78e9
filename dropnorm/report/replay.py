"""Running a report's reproduction scripts in fresh processes (the audit's last step).

A failure is observed inside a long test process: whatever earlier tests left behind (compiled graphs
in torch.compile's cache, a generator's position, a framework's global state) was there when it
happened. Its repro-<clause>.py rebuilds only the failing case. Running each script in a fresh
interpreter tells the reader which of the two they hold:

  reproduced       the script exited 1 and printed REPRODUCED: the case alone shows the failure
  not-reproduced   the script exited 0: the case alone behaves correctly, so the failure depended on
                   state the audit's process had built up. The observation stands (the verdict is not
                   changed: the implementation did compute it), but the script is not a reproduction
  error            any other exit (the script could not run here), with its last lines
  timed-out        it ran past the limit

With `--replay all`, known defects' evidence scripts (repro-<clause>-<condition>.py) are run the same
way: a recorded defect whose script no longer reproduces alone is worth a look (the bug may be fixed, or
depend on the process's history). Not by default: ten scripts that import torch cost half a minute.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

TAIL_LINES = 2  # the script's verdict line and the one before it


def run_script(path: pathlib.Path, timeout_s: float) -> dict:
    """One script in a fresh interpreter (this one's executable, the report directory as cwd)."""
    started = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run([sys.executable, path.name], cwd=path.parent, capture_output=True, text=True,
                              timeout=timeout_s, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"outcome": "timed-out", "exit": None, "seconds": round(time.monotonic() - started, 1),
                "tail": f"ran past {timeout_s:.0f} s"}
    out = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode == 1 and any(line.startswith("REPRODUCED") for line in out):
        outcome = "reproduced"
    elif proc.returncode == 0:
        outcome = "not-reproduced"
    else:
        outcome = "error"
    return {"outcome": outcome, "exit": proc.returncode, "seconds": round(time.monotonic() - started, 1),
            "tail": "\n".join(line[:300] for line in out[-TAIL_LINES:])}


def replay_scripts(directory: pathlib.Path, report: dict, timeout_s: float, *, known_defects: bool = False) -> float:
    """Run each failure's reproduction script (with known_defects, also each known defect's evidence
    script) and record the result as `standalone` on the failure or deviation that names it. Returns the
    seconds it took."""
    started = time.monotonic()
    for entry in report["clauses"]:
        targets = [entry["failure"]] if entry.get("failure") else []
        if known_defects:
            targets += [d for d in entry.get("deviations", []) if d.get("script_file")]
        for target in targets:
            name = target.get("script_file")
            if name and (directory / name).is_file():
                target["standalone"] = run_script(directory / name, timeout_s)
    return time.monotonic() - started


def not_reproduced(report: dict) -> list[str]:
    """The failing clauses whose script did not reproduce the failure in a fresh process."""
    return [e["id"] for e in report["clauses"]
            if (e.get("failure") or {}).get("standalone", {}).get("outcome") == "not-reproduced"]


def describe(standalone: dict | None) -> str:
    """One line for a page: what running the script alone after the audit showed."""
    if not standalone:
        return ""
    o, t = standalone["outcome"], standalone["seconds"]
    if o == "reproduced":
        return f"reproduces when run alone (exit 1, {t} s)"
    if o == "not-reproduced":
        return (f"does NOT reproduce when run alone (exit 0, {t} s): the failure depended on state the audit's "
                "process had built up (e.g. graphs compiled for earlier calls); the observation stands")
    return f"could not be replayed alone ({o}, {t} s): {standalone['tail'].splitlines()[-1] if standalone['tail'] else ''}"

