"""Writing and reading a report directory.

Every file is written atomically (a temporary file in the same directory, then
os.replace), so a reader or an interrupted audit never sees half a file. Every
path written is a fixed name or derived from a clause id, so nothing can
escape the report directory.
"""
from __future__ import annotations

import gzip
import json
import pathlib
import re
import shutil

from dropnorm.errors import ReportError  # noqa: F401 - raised here; callers catch it from here too
from dropnorm.report import html, markdown
from dropnorm.results_dir import write_atomic  # noqa: F401 - one atomic write for every file the suite writes
from dropnorm.report.model import SCHEMA_VERSION, with_reals

SCHEMA_FILE = pathlib.Path(__file__).resolve().parent / "schema.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def inside(directory: pathlib.Path, name: str) -> pathlib.Path:
    """directory/name, refusing any name that is not a plain file name."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"refusing to write {name!r}: not a plain file name")
    return directory / name


def write_scripts(directory: pathlib.Path, report: dict) -> None:
    """Each failure's reproduction (dropnorm.suite.reproduce) as repro-<clause>.py: a standalone script that
    exits 1 while the failure reproduces. Sets failure.script_file."""
    for entry in report["clauses"]:
        failure = entry["failure"]
        if failure is None or not failure.get("script"):
            continue
        name = f"repro-{entry['id']}.py"
        about = [f"Implementation: {report['implementation']['description']}", f"Test: {failure['test']}",
                 f"Observed: {failure['observed']}", f"Expected: {failure['expected']}", f"Run: python {name}"]
        # comments, not a docstring: the messages are the implementation's text and may hold quotes
        header = "".join(f"# {line}\n" for text in about for line in str(text).splitlines())
        first, _, rest = failure["script"].partition("\n")
        write_atomic(inside(directory, name), first + "\n" + header + rest)
        failure["script_file"] = name
    for entry in report["clauses"]:  # a known defect's evidence: repro-<clause>-<condition>.py, exits 1
        written = set()
        for dev in entry["deviations"]:
            if dev.get("kind") != "known-defect" or not dev.get("script") or dev["condition"] in written:
                continue
            written.add(dev["condition"])
            # a condition may hold "=" or "/" (D2-EDGE-01's p=1.0): only the characters of a plain name
            name = f"repro-{entry['id']}-{re.sub(r'[^A-Za-z0-9._-]', '_', dev['condition'])}.py"
            first, _, rest = dev["script"].partition("\n")
            header = (f"# Known defect of {report['implementation']['description']}: {entry['id']}/{dev['condition']}\n"
                      f"# Finding: {dev.get('finding') or '-'}\n# Run: python {name}\n")
            write_atomic(inside(directory, name), first + "\n" + header + rest)
            dev["script_file"] = name


def write_report(directory: pathlib.Path, report: dict, *, renders: bool = True) -> None:
    """report.json, and with renders also report.md, report.html and the reproduction scripts.
    report.json is written whatever happens to the scripts and pages (their errors are raised after)."""
    directory.mkdir(parents=True, exist_ok=True)
    problems = []
    if renders:
        try:
            write_scripts(directory, report)
        except Exception as e:  # noqa: BLE001 - keep the report whatever the scripts hold
            problems.append(f"reproduction scripts: {type(e).__name__}: {e}")
    write_atomic(directory / "report.json", json.dumps(report, indent=1, allow_nan=False, default=str) + "\n")
    if renders:
        try:
            render(directory, report)
        except Exception as e:  # noqa: BLE001
            problems.append(f"report.md/html: {type(e).__name__}: {e}")
    if problems:
        raise ReportError(f"report.json written to {directory}, but " + "; ".join(problems))


def render(directory: pathlib.Path, report: dict) -> None:
    report = with_reals(report)
    write_atomic(directory / "report.md", markdown.render(report))
    write_atomic(directory / "report.html", html.render(report))


def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def upgrade(report: dict) -> dict:
    """A schema 1.0 report read as 1.1 (after validate has checked its structure): its class verdicts computed
    from its clause entries under the levels it was judged with (each entry keeps its own level); severities
    stay unknown (null). In place."""
    if report.get("schema_version") == "1.0":
        from dropnorm.report.model import class_verdicts
        report["classes"] = class_verdicts(report["clauses"], report.get("strict", False), report.get("complete", True))
        report["schema_version"] = SCHEMA_VERSION
    return report


def validate(report: dict) -> None:
    """Validate against dropnorm/report/schema.json (jsonschema when installed, else the version only);
    a 1.0 report, which differs only by lacking `classes`, is validated as 1.1 and then upgraded, so that a
    malformed one is a ReportError rather than a traceback from computing its classes."""
    legacy = report.get("schema_version") == "1.0"
    version = SCHEMA_VERSION if legacy else report.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(f"schema_version {report.get('schema_version')!r}, this dropnorm reads {SCHEMA_VERSION}")
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        try:
            jsonschema.validate({**report, "schema_version": version, "classes": report.get("classes", [])}, schema())
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            raise ReportError(f"not a valid report: {e.message} at {where}") from None
    if legacy:
        if not isinstance(report.get("clauses"), list) or not all(isinstance(e, dict) for e in report["clauses"]):
            raise ReportError("not a valid report: clauses is not a list of clause entries")
        upgrade(report)


def load_report(path: str | pathlib.Path) -> dict:
    """A report.json (or a directory holding one), validated."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "report.json"
        if not path.exists() and path.with_suffix(".json.gz").exists():
            path = path.with_suffix(".json.gz")  # a committed report, compressed (docs/matrix-run/reports/)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        report = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ReportError(f"no report at {path}: run `dropnorm audit` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"cannot read {path}: {e}") from None
    if not isinstance(report, dict):
        raise ReportError(f"{path} is not a dropnorm report")
    validate(report)
    return report


PREVIOUS = "previous"  # <report dir>/previous/: the run before the latest (keep_previous)
RUN_FILES = ("report.json", "report.md", "report.html", "junit.xml")


def keep_previous(directory: pathlib.Path) -> pathlib.Path | None:
    """Before a new audit writes into `directory`: move the last run's report (report.json, .md, .html,
    junit.xml and its repro-*.py scripts) into directory/previous/, replacing the run kept there before, so
    that a re-audit never destroys the report it will be compared with. Returns the previous directory, or
    None when there was no report to keep."""
    if not (directory / "report.json").is_file():
        return None
    previous = directory / PREVIOUS
    if previous.exists():
        shutil.rmtree(previous)
    previous.mkdir()
    for name in RUN_FILES:
        if (directory / name).is_file():
            (directory / name).replace(previous / name)
    for script in directory.glob("repro-*.py"):
        script.replace(previous / script.name)
    return previous


def last_two(directory: str | pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(previous run, latest run) of one report directory, for `dropnorm compare DIR`."""
    directory = pathlib.Path(directory)
    if not (directory / PREVIOUS / "report.json").is_file():
        raise ReportError(f"{directory} holds one run only (no {PREVIOUS}/report.json): audit again, or name two "
                          "reports: dropnorm compare BEFORE AFTER")
    return directory / PREVIOUS, directory
