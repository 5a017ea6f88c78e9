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
depend on the process's history).

Start-up is amortised by a fork server (ForkServer): one fresh interpreter imports numpy and torch and
nothing else (no test, no implementation, no torch operation has run in it), then forks one child per
script, which runs the script as __main__ from the report directory. What a script could inherit is
therefore what any script gets from `import torch`; the implementation under test, the script's own
imports and everything it computes are the child's alone, so "reproduces alone" means what it meant with one
interpreter per script. Where fork is unavailable or the server cannot start, each script gets its own
interpreter as before.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

TAIL_LINES = 2  # the script's verdict line and the one before it


def _result(returncode: int | None, output: str, seconds: float, timeout_s: float) -> dict:
    """A script's outcome from its exit status and output (None: it ran past timeout_s)."""
    if returncode is None:
        return {"outcome": "timed-out", "exit": None, "seconds": round(seconds, 1), "tail": f"ran past {timeout_s:.0f} s"}
    out = output.strip().splitlines()
    if returncode == 1 and any(line.startswith("REPRODUCED") for line in out):
        outcome = "reproduced"
    elif returncode == 0:
        outcome = "not-reproduced"
    else:
        outcome = "error"
    return {"outcome": outcome, "exit": returncode, "seconds": round(seconds, 1),
            "tail": "\n".join(line[:300] for line in out[-TAIL_LINES:])}


def run_script(path: pathlib.Path, timeout_s: float) -> dict:
    """One script in a fresh interpreter (this one's executable, the report directory as cwd)."""
    started = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run([sys.executable, path.name], cwd=path.parent, capture_output=True, text=True,
                              timeout=timeout_s, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return _result(None, "", time.monotonic() - started, timeout_s)
    return _result(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started, timeout_s)


# The fork server's program: import numpy and torch, then for each request line {"path", "timeout"} fork a
# child that runs the script as __main__ with its directory as cwd and sys.path[0], its output to a file;
# answer one line {"returncode" (null when killed at the timeout), "output"}.
_SERVER = r"""
import json, os, runpy, signal, sys, tempfile, time, traceback
import numpy, torch
out = sys.stdout
sys.stdout = sys.stderr  # nothing the parent reads is written by anything but the answers below
print("ready", file=out, flush=True)
for line in sys.stdin:
    req = json.loads(line)
    path, timeout = req["path"], req["timeout"]
    log = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setpgid(0, 0)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os.chdir(os.path.dirname(path))
            sys.path[0] = os.path.dirname(path)
            sys.argv = [os.path.basename(path)]
            runpy.run_path(path, run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code)
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        time.sleep(0.02)
    if status is None:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except ProcessLookupError:
                pass
        os.waitpid(pid, 0)
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    log.close()
    print(json.dumps({"returncode": status, "output": text[-20000:]}), file=out, flush=True)
"""


class ForkServer:
    """A fresh interpreter that has imported numpy and torch only and forks one child per script (see the
    module docstring for why this keeps "alone" honest). Use as a context manager; run() as run_script()."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, start_new_session=True,
                                     env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise OSError("the replay fork server did not start")

    def run(self, path: pathlib.Path, timeout_s: float) -> dict:
        started = time.monotonic()
        self.proc.stdin.write(json.dumps({"path": str(path.resolve()), "timeout": timeout_s}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise OSError("the replay fork server died")
        got = json.loads(answer)
        return _result(got["returncode"], got["output"], time.monotonic() - started, timeout_s)

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _runner():
    """ForkServer where fork exists and the server starts (torch importable), else None."""
    if not hasattr(os, "fork"):
        return None
    try:
        return ForkServer()
    except (OSError, ValueError):
        return None


def replay_scripts(directory: pathlib.Path, report: dict, timeout_s: float, *, known_defects: bool = False) -> float:
    """Run each failure's reproduction script (with known_defects, also each known defect's evidence
    script) and record the result as `standalone` on the failure or deviation that names it. Returns the
    seconds it took."""
    started = time.monotonic()
    jobs = []
    for entry in report["clauses"]:
        targets = [entry["failure"]] if entry.get("failure") else []
        if known_defects:
            targets += [d for d in entry.get("deviations", []) if d.get("script_file")]
        jobs += [(t, directory / t["script_file"]) for t in targets
                 if t.get("script_file") and (directory / t["script_file"]).is_file()]
    if not jobs:
        return 0.0
    server = _runner()
    try:
        for target, path in jobs:
            try:
                target["standalone"] = server.run(path, timeout_s) if server else run_script(path, timeout_s)
            except OSError:  # the server died: the rest get an interpreter each
                server.close()
                server = None
                target["standalone"] = run_script(path, timeout_s)
    finally:
        if server:
            server.close()
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

