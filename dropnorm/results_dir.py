"""The files one pytest run of the suite leaves for its parent process: the one owner of their names
and formats.

A run is started with `--dropnorm-results=RECORDS` (`dropnorm audit` names RECORDS `.results.jsonl` in
the report directory; the zoo's grouped runs name one per group). Beside RECORDS:

  RECORDS                      JSON Lines: events "start", "test" (one record per test phase), "warning",
                               "finish"; written by suite/recorder.py, read by report/model.py
  RECORDS.collected.json       nodeid -> the clauses it cites, written when collection finishes, so that a
                               test whose worker died can still be charged to its clauses
  RECORDS.running/<pid>.json   which test each process runs and since when: the watchdog's view
  .timeouts.json               nodeid -> limit in seconds, the tests the watchdog stopped (run/audit.py)

Every JSON file is replaced atomically (write beside, then rename), so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
import pathlib
import time

RECORDS_NAME = ".results.jsonl"


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Replace `path` with `text` at once (write beside, then rename): a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: pathlib.Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, or a run killed before it wrote the file
        return default


class RecordsWriter:
    """Appends events to a records file, each flushed at once so that an interrupted run keeps what finished."""

    def __init__(self, path: pathlib.Path):
        self.file = open(path, "a", encoding="utf-8")

    def write(self, entry: dict) -> None:
        self.file.write(json.dumps(entry, default=str) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class ResultsFiles:
    """The results files of one run, named from its records file."""

    def __init__(self, records: str | os.PathLike):
        self.records = pathlib.Path(records)
        self.collected = self.records.with_name(self.records.name + ".collected.json")
        self.running = self.records.with_name(self.records.name + ".running")
        self.timeouts = self.records.with_name(".timeouts.json")

    @classmethod
    def in_directory(cls, directory: str | os.PathLike) -> "ResultsFiles":
        return cls(pathlib.Path(directory) / RECORDS_NAME)

    def all_files(self) -> list[pathlib.Path]:
        return [self.records, self.collected, self.timeouts, *self.running_markers()]

    def clear(self) -> None:
        """Remove a previous run's files."""
        for path in self.all_files():
            path.unlink(missing_ok=True)

    # records: JSON Lines, appended and flushed one event at a time
    def open_records(self) -> "RecordsWriter":
        return RecordsWriter(self.records)

    def events(self):
        """The records file's events in order; a last line cut short by a kill is left out."""
        if not self.records.exists():
            return
        for line in self.records.read_text(encoding="utf-8").splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue

    def events_since(self, offset: int) -> tuple[list[dict], int]:
        """The events completed after byte `offset`, and the offset after them (a line still being written
        waits for the next call): how the audit follows a run while it goes."""
        if not self.records.exists():
            return [], offset
        with open(self.records, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        return [json.loads(line) for line in complete.decode("utf-8").splitlines()], offset + len(complete)

    # collected: nodeid -> clauses
    def write_collected(self, mapping: dict[str, list[str]]) -> None:
        write_atomic(self.collected, json.dumps(mapping))

    def read_collected(self) -> dict[str, list[str]] | None:
        """The collected map, or None while collection has not finished."""
        return _read_json(self.collected, None)

    # running markers
    def mark_running(self, nodeid: str) -> pathlib.Path:
        """Note that this process runs `nodeid` from now on; returns the marker to unlink when it ends."""
        self.running.mkdir(exist_ok=True)
        marker = self.running / f"{os.getpid()}.json"
        write_atomic(marker, json.dumps({"nodeid": nodeid, "pid": os.getpid(), "started": time.time()}))
        return marker

    def running_markers(self) -> list[pathlib.Path]:
        return sorted(self.running.glob("*.json")) if self.running.is_dir() else []

    @staticmethod
    def read_marker(marker: pathlib.Path) -> dict | None:
        """A marker's {nodeid, pid, started}, or None when its process just replaced or removed it."""
        return _read_json(marker, None)

    # timeouts
    def write_timeouts(self, timed_out: dict[str, float]) -> None:
        write_atomic(self.timeouts, json.dumps(timed_out))

    def read_timeouts(self) -> dict[str, float]:
        return _read_json(self.timeouts, {})
