"""Errors that mean "the user's input is wrong", as opposed to bugs.

The CLI prints an :class:`MlpipeError` as one line and exits non-zero; anything else is a bug and
keeps its traceback.
"""


class MlpipeError(Exception):
    """Base class for problems a user can fix (bad config, bad data, failed gate)."""


class ConfigError(MlpipeError):
    """The configuration is invalid: unknown key, wrong type, impossible combination."""


class DataError(MlpipeError):
    """The data cannot be used: missing or unreadable file, empty table, absent column."""


class DataValidationError(MlpipeError):
    """A data-quality gate failed; the flow stops before training."""


class DataDriftError(MlpipeError):
    """Incoming data drifted from the champion's training data and the drift gate is `fail`."""
