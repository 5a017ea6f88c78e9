"""dropnorm's exceptions: one root, DropnormError, so that a caller can catch everything the suite
itself raises (`except DropnormError`) without catching what an implementation under test raises.

Two families hang from it:
  errors the user must fix before anything runs (the command exits 2 with the message, never a traceback):
    UsageError     a command-line value, file or directory that cannot be used
    SpecError      a clause index, convention or deviation file that is not valid
    ImplSpecError  an --impl value that names no implementation
    ReportError    a report file that is missing, unreadable or not valid against its schema
  signals inside a run of the suite (never shown to a user as an error of theirs):
    NotProvided    the implementation does not provide a layer, keyword or capability (the test skips)
    SuiteError     an error of the test suite itself, not of the implementation under test
The verdict exceptions (suite/checks.ClauseViolation, suite/judging.ClauseViolations) and the input-class
and global-state signals (suite/input_classes, suite/isolation) derive from DropnormError too.
"""
from __future__ import annotations


class DropnormError(Exception):
    """The root of every exception the suite raises on purpose."""


class UsageError(DropnormError):
    """Something the user must fix before an audit can run: exit 2 with this one-line message."""


class SpecError(DropnormError, ValueError):
    """A clause index, convention or deviation file that is not valid."""


class ImplSpecError(UsageError, ValueError):
    """An --impl value that names no implementation."""


class ReportError(DropnormError, ValueError):
    """A report file that is missing, unreadable, or not valid against the schema."""


class NotProvided(DropnormError):
    """The implementation does not provide this layer, keyword or capability."""


class SuiteError(DropnormError):
    """An error of the test suite itself (not of the implementation under test)."""


# the errors a command reports as a one-line usage error (exit 2)
USER_ERRORS = (UsageError, SpecError, ReportError)
