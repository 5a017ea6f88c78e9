"""What an audit ran on and with: versions, platform, provenance."""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
from importlib import metadata

import dropnorm
from dropnorm.spec import ROOT, spec_version


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def dropnorm_commit() -> str | None:
    """The git commit of the dropnorm checkout, with '+dirty' for uncommitted changes; None outside git."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def torch_build() -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"version": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn,
            "debug": bool(torch.version.debug), "threads": torch.get_num_threads(),
            "cuda_available": torch.cuda.is_available(),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def environment() -> dict:
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "numpy": _version("numpy"), "scipy": _version("scipy"), "hypothesis": _version("hypothesis"),
            "pytest": _version("pytest"), "pytest_xdist": _version("pytest-xdist"), "torch": torch_build()}


def provenance(argv: list[str]) -> dict:
    return {"spec_version": spec_version(), "dropnorm_version": dropnorm.__version__,
            "dropnorm_commit": dropnorm_commit(), "command": shlex.join(["dropnorm", *argv])}  # the same command however it was started (-m dropnorm: cli.py)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()
