"""The speaker-probe table and t-SNE figure of an experiment (Li et al. 2020, Figure 2).

Li et al. only show a t-SNE picture of the two unseen speakers of one fold. Here every
system's encoder output is also probed on every fold: a linear classifier tries to tell the
fold's unseen speakers apart (:func:`ser_pipeline.reporting.speaker_probe.speaker_probe`),
so "speaker information removed" becomes a number per system with its spread over folds.
"""
from __future__ import annotations

import numpy as np

from ser_pipeline.atomic import write_text
from ser_pipeline.reporting.speaker_probe import load_embeddings, speaker_probe, tsne_figure


def write_probe_outputs(name: str, exp: dict, embeddings: dict[str, dict[str, str]], out_md, out_png) -> str:
    probe = exp["probe"]
    rows = []
    for model in [m for m in exp["models"] if m in embeddings]:  # the experiment's order
        folds = embeddings[model]
        accs, chances, ns = [], [], []
        for fold in sorted(folds):
            e = load_embeddings(folds[fold])
            r = speaker_probe(e["embeddings"], e["speaker"], seed=int(probe.get("seed", 0)))
            accs.append(r["accuracy"])
            chances.append(r["chance"])
            ns.append(r["n"])
        rows.append((model, np.array(accs), np.array(chances), ns))
    fold = probe.get("fold", "f01")
    figure_runs = {exp["models"].get(m, m) or m: embeddings[m][fold] for m in probe.get("figure", list(embeddings))}
    tsne_figure(figure_runs, out_png, seed=int(probe.get("seed", 0)))
    lines = [f"# {exp.get('title', name)}: speaker probe", "",
             "- **What**: a linear classifier (logistic regression on standardised embeddings, stratified "
             "5-fold cross-validation) tells the fold's two unseen speakers (its validation and test speaker) "
             "apart from each system's encoder output; lower means less speaker information is left. A probe "
             "near chance shows no *linearly* decodable speaker identity, not its absence.",
             f"- **Folds**: every fold's model ({len(rows[0][1]) if rows else 0} folds); chance = the majority "
             "speaker's share of the fold's utterances",
             f"- **Figure**: t-SNE of fold {fold}, coloured by emotion and by speaker (`{out_png}`)", "",
             "| System | Paper row | Probe accuracy (mean ± std over folds) | Chance (mean) | Utterances per fold |",
             "|---|---|---|---|---|"]
    for model, accs, chances, ns in rows:
        std = accs.std(ddof=1) if len(accs) > 1 else 0.0
        lines.append(f"| {model} | {exp['models'].get(model, '')} | {100 * accs.mean():.1f} ± {100 * std:.1f} | "
                     f"{100 * chances.mean():.1f} | {min(ns)}-{max(ns)} |")
    md = "\n".join(lines) + "\n"
    write_text(out_md, md)
    return md
