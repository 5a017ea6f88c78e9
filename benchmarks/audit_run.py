"""One `dropnorm audit` in a temporary report directory, for the benchmark scripts."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def audit_report(impl: str, *args: str, env: dict | None = None) -> dict:
    """Run `dropnorm audit --impl IMPL --jobs=2 --quiet ARGS...`; return its report.json."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "dropnorm.run.cli", "audit", f"--impl={impl}", "--jobs=2", "--quiet",
                        f"--report-dir={d}", *args],
                       cwd=ROOT, env=dict(os.environ, **(env or {})), capture_output=True, text=True, check=False)
        return json.loads((pathlib.Path(d) / "report.json").read_text())
