"""Errors a user can act on: each one names the file or config key at fault and the reason."""


def listing(items, limit: int = 10) -> str:
    """The first ``limit`` items, one per indented line, and how many more there are.

    Errors that collect every bad file (instead of stopping at the first) name them this way.
    """
    items = [str(i) for i in items]
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "".join(f"\n  {i}" for i in items[:limit]) + more


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


class StoreError(SerError):
    """A feature store that is missing, incomplete or damaged; the message names the store,
    the array and chunk at fault, and how to rebuild it."""

    def __init__(self, store, reason, array: str | None = None, chunk: int | None = None,
                 file=None):
        self.store, self.reason, self.array, self.chunk = str(store), reason, array, chunk
        self.file = None if file is None else str(file)
        where = ""
        if array is not None:
            where = f"array '{array}'" + ("" if chunk is None else f" chunk {chunk}")
            where += f" (file {self.file})" if self.file else ""
            where += ": "
        super().__init__(f"{self.store}: {where}{reason}; delete {self.store} and rerun snakemake "
                         f"(it will re-extract)")
