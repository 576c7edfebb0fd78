"""Shared set-up of the benchmarks: the machine load for their headers (every script here that
prints one), and for the training-step benchmarks (bench_dropout, bench_birnn,
bench_optimizer) the same command line, 1 torch thread and header line."""
from __future__ import annotations

import argparse
import os
import time


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def start(description: str, rounds: int, steps: int) -> argparse.Namespace:
    """Parse ``--rounds`` / ``--steps``, pin torch to 1 thread, print the header line."""
    import torch  # here, so that load() costs the job-start benchmarks no torch import

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--steps", type=int, default=steps)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# {time.strftime('%F %T')}, load average {load()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, 1 thread")
    return args


def done() -> None:
    print(f"# done, load average {load()}")
