"""Wall time of a finished run, per stage, from Snakemake's benchmark files.

Every heavy rule writes results/benchmarks/<stage>/...tsv (the `benchmark:` directive);
this sums their wall seconds per stage, so the cost of the default run can be quoted from
a command rather than remembered.
Usage: python benchmarks/run_cost.py [results]
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results") / "benchmarks"
    if not root.is_dir():
        sys.exit(f"{root}: no benchmark files (run the pipeline first)")
    total = defaultdict(float)
    count = defaultdict(int)
    for tsv in root.rglob("*.tsv"):
        stage = tsv.relative_to(root).parts[0]
        lines = tsv.read_text().splitlines()
        if len(lines) >= 2:
            total[stage] += float(lines[1].split("\t")[0])
            count[stage] += 1
    print(f"{'stage':10s} {'jobs':>5s} {'job-seconds':>12s}")
    for stage in sorted(total):
        print(f"{stage:10s} {count[stage]:5d} {total[stage]:12.0f}")
    print(f"{'total':10s} {sum(count.values()):5d} {sum(total.values()):12.0f}  "
          f"(sum over jobs; jobs run in parallel, so wall-clock time is lower)")


if __name__ == "__main__":
    main()
