"""Results tables: our mean ± std over folds x seeds beside the paper's number.

Every table states its corpus, protocol, metric definitions and any caveat of its
features (e.g. random-init wav2vec) in its header, so a table copied out of the report
still says what it measured.
"""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd

from ser_pipeline.atomic import write_text
from ser_pipeline.reporting.paper import paper_entry
from ser_pipeline.training.metrics import DEFINITIONS


def load_runs(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(json.load(f))
    return runs


def feature_notes(runs: list[dict]) -> list[str]:
    notes = {}
    for r in runs:
        for stream, meta in r["features"].items():
            info = meta.get("info") or {}
            name = meta.get("extractor")
            if info.get("random_init"):
                notes[name] = (f"`{name}` features come from a RANDOMLY INITIALISED model "
                               f"({info.get('model_checksum', 'random-init')}), not pretrained weights: "
                               f"its numbers show the pipeline works, not what wav2vec can do")
            elif info.get("model"):
                notes[name] = f"`{name}` features come from `{info['model']}` ({info.get('model_checksum', '')})"
    return sorted(notes.values())


def summarise(runs: list[dict], metrics: list[str]) -> pd.DataFrame:
    groups = defaultdict(list)
    for r in runs:
        groups[(r["model"], str(r["size_per_class"]))].append(r)
    rows = []
    for (model, size), rs in groups.items():
        row = {"model": model, "size_per_class": size, "runs": len(rs),
               "folds": len({r["fold"] for r in rs}), "seeds": len({r["seed"] for r in rs}),
               "train_per_class": round(float(np.mean([np.mean(list(r["n_train_per_class"].values())) for r in rs])), 1)}
        for m in metrics:
            vals = np.array([r["metrics"][m] for r in rs], dtype=float) * 100
            row[f"{m}_mean"] = round(float(vals.mean()), 2)
            row[f"{m}_std"] = round(float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, 2)
        rows.append(row)
    return pd.DataFrame(rows)


def _size_key(s: str):
    return (1, 0) if s == "full" else (0, int(s))


def build_table(exp_name: str, exp: dict, runs: list[dict], corpus_info: str = "") -> tuple[str, pd.DataFrame]:
    metrics = exp.get("metrics", ["UA", "WA"])
    ref = paper_entry(exp.get("paper"))
    df = summarise(runs, metrics)
    df["paper_row"] = df["model"].map(exp["models"])
    order = {m: i for i, m in enumerate(exp["models"])}
    df = df.sort_values(by=["model", "size_per_class"],
                        key=lambda c: c.map(order) if c.name == "model" else c.map(_size_key)).reset_index(drop=True)
    for m in metrics:
        df[f"{m}_paper"] = [(ref.get("rows", {}).get(row, {}) or {}).get(m) for row in df["paper_row"]]

    first = runs[0]
    lines = [f"# {exp.get('title', exp_name)}", "",
             f"- **Corpus**: {first['corpus']}{corpus_info}",
             f"- **Protocol**: `{first['protocol']}`: {first['protocol_description']} "
             f"({df['folds'].max()} folds)",
             f"- **Training data**: {', '.join(str(s) for s in exp['sizes'])} examples per class "
             f"(drawn from each fold's training part; `full` = all of it); seeds {exp['seeds']}",
             f"- **Epoch**: {first['epoch_selection']}",
             "- **Metrics**: " + "; ".join(f"{m} = {DEFINITIONS[m]}" for m in metrics),
             "- **Ours**: mean ± standard deviation over folds × seeds, in percent",
             ]
    if ref:
        lines.append(f"- **Paper**: {ref['source']}")
    for note in feature_notes(runs):
        lines.append(f"- **Note**: {note}")
    lines.append("")
    head = ["Model", "Paper row", "Per class"] + [h for m in metrics for h in (f"{m} ours", f"{m} paper")] + ["Runs"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for _, r in df.iterrows():
        cells = [r["model"], r["paper_row"] or "", f"{r['size_per_class']} ({r['train_per_class']:g})"]
        for m in metrics:
            cells.append(f"{r[f'{m}_mean']:.1f} ± {r[f'{m}_std']:.1f}")
            p = r[f"{m}_paper"]
            cells.append("" if p is None or (isinstance(p, float) and np.isnan(p)) else f"{p:g}")
        cells.append(str(r["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    others = [(row, v) for row, v in ref.get("rows", {}).items() if row not in set(df["paper_row"])]
    if others:
        lines += ["", "Other rows of the paper's table (no counterpart run here):", ""]
        lines.append("| Paper row | " + " | ".join(metrics) + " |")
        lines.append("|---|" + "---|" * len(metrics))
        for row, v in others:
            lines.append(f"| {row} | " + " | ".join(f"{v[m]:g}" if m in v else "" for m in metrics) + " |")
    lines.append("")
    return "\n".join(lines), df


def write_table(exp_name: str, exp: dict, run_paths: list[str], out_md: str, out_csv: str,
                corpus_info: str = "") -> str:
    """The experiment's Markdown (with confusion matrices where asked) and CSV; returns the Markdown."""
    from ser_pipeline.reporting.plots import confusion_markdown

    runs = load_runs(run_paths)
    md, df = build_table(exp_name, exp, runs, corpus_info)
    if exp.get("confusion"):
        md += "\n" + confusion_markdown(exp, runs)
    write_text(out_csv, df.to_csv(index=False))
    write_text(out_md, md)
    return md
