"""The state of one run of the property suite, held in one object scoped to that run.

While pytest runs the suite, a few things live between and across calls: the trace of the current
test and example (suite/traced.py), the clause context of the running test (suite/checks.py), the
layer kind the current hypothesis run draws and whether it draws constructor parameters from grids
(suite/strategies.py), and the pytest config the recorder writes through (suite/recorder.py). They
are the fields of one RunState. `current()` is the run in progress; the plugin opens a run at
pytest_configure and closes it at pytest_unconfigure, so that two runs in one process (a user's own
pytest session beside pytester, say) never see each other's state. Outside any run (a reproduction
script, a unit test calling the traced path directly) the base state serves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RunState:
    trace: Any = None           # suite.traced.Trace, made on first use (traced.current_trace)
    context: Any = None         # suite.checks.Context of the running test (checks.context)
    focus: str | None = None    # the layer kind the current hypothesis run draws, None for any
    grid: bool = False          # whether constructor parameters come from their grids (compiled paths)
    config: Any = None          # the pytest config of the session, for the recorder


_RUNS: list[RunState] = [RunState()]   # the runs in progress, innermost last; the first is the base state


def current() -> RunState:
    return _RUNS[-1]


def begin() -> RunState:
    """Open a run: a fresh state until the matching end()."""
    _RUNS.append(RunState())
    return _RUNS[-1]


def end() -> None:
    """Close the innermost run (the base state stays)."""
    if len(_RUNS) > 1:
        _RUNS.pop()
