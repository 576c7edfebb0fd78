"""The malloc settings keep freed memory for the next batch instead of faulting it in again."""
import subprocess
import sys
from pathlib import Path

import pytest

from ser_pipeline import allocator

# Twenty rounds of a training step's pattern: many blocks of a few MB allocated, then all freed.
_ROUNDS = """
import resource, sys
from ser_pipeline.allocator import keep_freed_memory
applied = keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    blocks = [bytearray(4 << 20) for _ in range(20)]
    del blocks
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env_value: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _ROUNDS], capture_output=True, text=True, check=True,
                         env={"SER_KEEP_FREED_MEMORY": env_value, "PATH": "/usr/bin:/bin"},
                         cwd=Path(allocator.__file__).parents[1]).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_memory_is_reused_without_page_faults():
    applied, kept = _faults("1")
    off, default = _faults("0")
    assert applied and not off
    # 20 rounds x 80 MB: glibc's defaults trim the heap after every round (about 20 x 20k
    # page faults); kept, only the first round faults its pages in.
    assert default > 5 * kept, (default, kept)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("SER_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False
