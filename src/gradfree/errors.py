"""Errors a user can act on.

Every error raised for a user mistake or a broken input derives from :class:`GradfreeError`; the CLI prints
its message as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class GradfreeError(Exception):
    """Base class of user-facing errors: the message says what went wrong and how to fix it."""


class ConfigError(GradfreeError, ValueError):
    """A bad argument, spec string or unknown registry name."""


class DataError(GradfreeError):
    """A dataset file is missing, truncated, corrupt or failed its checksum."""


class NonFiniteLossError(GradfreeError):
    """The loss is NaN or infinite where the run cannot go on (e.g. at the starting point)."""


class UnsafeFileError(ConfigError):
    """A checkpoint or cache holds something that is not plain data (loading it could run code)."""


class GradfreeWarning(UserWarning):
    """A setting was adjusted or ignored (e.g. a batch larger than the split); the CLI prints it as one line."""
