"""Scaling curves, confusion matrices and per-speaker scores, as PNG and SVG (matplotlib, no display needed)."""
from __future__ import annotations

import numpy as np

from ser_pipeline.atomic import atomic_path
from ser_pipeline.reporting.paper import paper_entry


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


IEMOCAP_FULL_PER_CLASS = 5531 * 4 / 5 / 4  # the training part of a 5-fold split, per class on average


def scaling_plot(exp_name: str, exp: dict, runs: list[dict], out_png: str, out_svg: str) -> None:
    plt = _plt()
    metric = exp.get("metrics", ["UA"])[0]
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    for model, label in exp["models"].items():
        rs = [r for r in runs if r["model"] == model]
        sizes = sorted({str(r["size_per_class"]) for r in rs}, key=lambda s: (s == "full", int(s) if s != "full" else 0))
        xs, means, stds = [], [], []
        for s in sizes:
            sel = [r for r in rs if str(r["size_per_class"]) == s]
            xs.append(np.mean([np.mean(list(r["n_train_per_class"].values())) for r in sel]))
            vals = np.array([r["metrics"][metric] for r in sel]) * 100
            means.append(vals.mean())
            stds.append(vals.std(ddof=1) if len(vals) > 1 else 0.0)
        xs, means, stds = map(np.array, (xs, means, stds))
        line = ax.plot(xs, means, marker="o", label=f"{label} (ours, {runs[0]['corpus']})")[0]
        ax.fill_between(xs, means - stds, means + stds, alpha=0.2, color=line.get_color())
        for p in paper_entry(exp.get("paper")).get("points", {}).get(label, []):
            x = IEMOCAP_FULL_PER_CLASS if p["per_class"] == "full" else p["per_class"]
            ax.scatter([x], [p[metric]], marker="s", facecolors="none", edgecolors=line.get_color(), s=60,
                       label=f"{label} (paper, IEMOCAP, {p['source']})")
    ax.axhline(100.0 / len(runs[0]["metrics"]["classes"]), color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("training examples per class (log scale)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(exp.get("title", exp_name), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides a point
    fig.tight_layout()
    for out in (out_png, out_svg):
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.rsplit(".", 1)[1], dpi=150)
    plt.close(fig)


def summed_confusion(runs: list[dict], model: str) -> tuple[np.ndarray, list[str]]:
    rs = [r for r in runs if r["model"] == model]
    cm = np.sum([np.array(r["metrics"]["confusion"]) for r in rs], axis=0)
    return cm, rs[0]["metrics"]["classes"]


def confusion_markdown(exp: dict, runs: list[dict]) -> str:
    ref = paper_entry("ma2018_confusion") if exp.get("paper", "").startswith("ma2018") else {}
    lines = ["## Confusion matrices (rows: actual, columns: predicted, % of row; summed over folds × seeds)", ""]
    for model, label in exp["models"].items():
        cm, classes = summed_confusion(runs, model)
        pct = 100 * cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        lines += [f"### {model} ({label}), ours", "", "| actual \\ predicted | " + " | ".join(classes) + " |",
                  "|---|" + "---|" * len(classes)]
        lines += [f"| {c} | " + " | ".join(f"{v:.1f}" for v in row) + " |" for c, row in zip(classes, pct)]
        if label in ref.get("tables", {}):
            paper = np.array(ref["tables"][label], dtype=float)
            pc = list(ref["classes"])
            if set(pc) == set(classes):  # show the paper's matrix in our class order
                perm = [pc.index(c) for c in classes]
                paper, pc = paper[np.ix_(perm, perm)], list(classes)
            lines += ["", f"### {label}, paper ({ref['source']})", "",
                      "| actual \\ predicted | " + " | ".join(pc) + " |", "|---|" + "---|" * len(pc)]
            lines += [f"| {c} | " + " | ".join(f"{v:g}" for v in row) + " |" for c, row in zip(pc, paper)]
        lines.append("")
    return "\n".join(lines)


def confusion_plot(exp: dict, runs: list[dict], out_png: str) -> None:
    plt = _plt()
    models = list(exp["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        cm, classes = summed_confusion(runs, model)
        pct = 100 * cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center",
                        color="white" if pct[i, j] > 60 else "black", fontsize=9)
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title(f"{model}: {exp['models'][model]}", fontsize=9)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)


def speaker_plot(exp_name: str, exp: dict, runs: list[dict], out_png: str, out_svg: str | None = None) -> None:
    """Per-speaker UA, one column per system, a grey line joining each speaker across systems.

    A mean over folds can hide a system that wins on a few speakers by a lot and loses on
    most; the lines show that at a glance. One panel per training size.
    """
    from ser_pipeline.reporting.comparison import compare_runs, reference_model
    from ser_pipeline.reporting.runs import by_model, size_key

    plt = _plt()
    models = list(exp["models"])
    grouped = by_model(runs, models)
    _, info = compare_runs(exp, grouped, ["UA"], bootstrap=False)
    means = info["speaker_means"]
    ref = reference_model(exp)
    sizes = sorted({s for _, s in means}, key=size_key)
    fig, axes = plt.subplots(1, len(sizes), figsize=(max(4.0, 1.4 * len(models) + 1.5) * len(sizes), 4.2),
                             squeeze=False)
    rng = np.random.default_rng(0)
    for ax, size in zip(axes[0], sizes):
        present = [m for m in models if (m, size) in means]
        speakers = sorted(means[(present[0], size)])
        grid = np.array([[means[(m, size)][s] for m in present] for s in speakers])  # speakers x systems
        x = np.arange(len(present))
        for row in grid:
            ax.plot(x, row, color="grey", lw=0.8, alpha=0.6, zorder=1)
        ax.boxplot([grid[:, j] for j in range(len(present))], positions=x, widths=0.45, showfliers=False,
                   medianprops={"color": "black"}, zorder=2)
        for j in range(len(present)):
            ax.scatter(x[j] + rng.uniform(-0.06, 0.06, len(speakers)), grid[:, j], s=18, zorder=3)
        labels = []
        for j, m in enumerate(present):
            if m == ref:
                labels.append(f"{m}\n(reference)")
            else:
                k = present.index(ref) if ref in present else None
                better = int((grid[:, j] > grid[:, k]).sum()) if k is not None else 0
                labels.append(f"{m}\nbetter on {better}/{len(speakers)}")
        ax.set_xticks(x, labels, fontsize=7, rotation=20, ha="right")
        ax.set_ylabel("UA per test speaker (%, mean over seeds)")
        ax.set_title(f"{exp.get('title', exp_name)}\nper class: {size}; {len(speakers)} speakers", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    for out in [out_png] + ([out_svg] if out_svg else []):
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.rsplit(".", 1)[1], dpi=150)
    plt.close(fig)
