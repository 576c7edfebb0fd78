"""Record which package modules a stage really imported (for the rerun-digest tests).

With ``SER_RECORD_IMPORTS=<folder>`` set, every CLI invocation writes, when it exits, the
sorted list of ``ser_pipeline`` modules loaded in the process to a file in that folder.
The workflow tests compare these lists with the statically derived closures behind each
job's code digest: a module a job imported but its digest does not cover would be a rerun
the pipeline misses.
"""
from __future__ import annotations

import atexit
import json
import os
import sys


def install() -> None:
    folder = os.environ.get("SER_RECORD_IMPORTS")
    if folder:
        atexit.register(_write, folder, list(sys.argv))


def _write(folder: str, argv: list[str]) -> None:
    mods = sorted(m for m in sys.modules if m == "ser_pipeline" or m.startswith("ser_pipeline."))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{os.getpid()}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"argv": argv, "modules": mods}, f)
    os.replace(path + ".tmp", path)
