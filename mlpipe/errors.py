"""Errors that mean "the input or the environment is wrong", as opposed to bugs.

The CLI prints an :class:`MlpipeError` as one line and exits non-zero; anything else is a bug and
keeps its traceback (shown with ``-v``).
"""


class MlpipeError(Exception):
    """Base class for problems a user can fix (bad config, bad data, failed gate, outage)."""


class ConfigError(MlpipeError):
    """The configuration is invalid: unknown key, wrong type, impossible combination."""


class DataError(MlpipeError):
    """The data cannot be used: missing or unreadable file, empty table, absent column."""


class DataValidationError(MlpipeError):
    """A data-quality gate failed; the flow stops before training."""


class DataDriftError(MlpipeError):
    """Incoming data drifted from the champion's training data and the drift gate is `fail`."""


class TrainingError(MlpipeError):
    """Training could not produce a usable network (e.g. the loss diverged)."""


class SmokeTestError(MlpipeError):
    """The registered model could not be loaded and used in a fresh process."""


class TrackingError(MlpipeError):
    """The MLflow tracking backend is unreachable or refused a request."""


class RegistryError(MlpipeError):
    """A registry operation was refused: unknown model or version, ineligible version, lock."""


def interruption(err: BaseException) -> BaseException | None:
    """The signal-like exception (SIGTERM, Ctrl-C: not an ``Exception``) behind ``err``, if any.

    A library that catches ``Exception`` around a call a signal interrupted can raise its own
    error from the cleanup (MLflow wraps a SQLite session that failed to close); the signal is
    then only in the exception's chain.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not isinstance(current, Exception):
            return current
        current = current.__cause__ or current.__context__
    return None
