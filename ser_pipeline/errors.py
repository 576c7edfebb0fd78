"""Errors a user can act on: each one names the file or config key at fault and the reason."""


class SerError(Exception):
    """Base class; the CLI prints these without a traceback."""


class AudioError(SerError):
    """An audio file that cannot be used (corrupt, empty, wrong rate, stereo)."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CorpusError(SerError):
    """A corpus that does not match what its loader expects (layout, labels, counts)."""


class ConfigError(SerError):
    """A config value that is missing or invalid; the message names the key."""


class LeakageError(SerError):
    """A fold whose train/validation/test parts share a speaker (or a script, where asked)."""
