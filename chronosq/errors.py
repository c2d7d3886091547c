"""Exceptions raised by ChronosQ.

    ChronosQError
    ├── ConfigError          a chronosq.toml key or value is invalid
    ├── RootError            the root is missing, not initialised, or locked
    ├── InvalidEventError    an event cannot become a job (the reason is the message)
    ├── InvalidNameError     an id, type or worker id is not a safe path part
    └── WorkerError          a worker cannot start or register

The command line catches ChronosQError once and prints its message on one line.
"""


class ChronosQError(Exception):
    """Base class of every error ChronosQ raises on purpose."""


class ConfigError(ChronosQError):
    """A configuration key or value is invalid; the message names the key."""


class RootError(ChronosQError):
    """The root cannot be used: missing, not initialised, or already supervised."""


class InvalidEventError(ChronosQError):
    """An event cannot become a job; the message is the reason kept beside it."""


class InvalidNameError(InvalidEventError):
    """An id, type or worker id could leave its folder or hide a file."""


class WorkerError(ChronosQError):
    """A worker cannot start, for example because its id is already live."""
