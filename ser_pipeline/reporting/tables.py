"""Results tables: our numbers with 95% intervals and paired tests, beside the paper's numbers.

Every table states its corpus, protocol, folds, validation split, epoch selection, label
set and class counts, training options, metric definitions and how its intervals and tests
were computed, so a table copied out of the report still says what it measured and whether
a difference between two systems is more than noise.

Table kinds (``experiments.*.kind``):
- ``table`` / ``scaling``: UA/WA per system and training size (Boigne et al., Ma et al.).
- ``val_test``: validation and test scores and Δ = test − validation (Li et al. 2020, Table 2).
- ``cross_corpus``: mean, min, max accuracy of the folds' models on another corpus (Li et al.
  2020, Table 3); reads cross-corpus result files, not training runs.
- ``reference_sweep``: mean (std) over the choice of reference utterance and a paired
  t-test between systems (Triantafyllopoulos et al. 2021, Table 4).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ser_pipeline.atomic import write_text
from ser_pipeline.errors import ConfigError
from ser_pipeline.reporting import comparison as cmp
from ser_pipeline.reporting import stats
from ser_pipeline.reporting.paper import paper_entry
from ser_pipeline.reporting.runs import (by_model, check_same_labels, load_runs, metric_value, options_text, require,
                                         run_name, size_key, size_str)
from ser_pipeline.reporting.stats import IncompleteResultsError
from ser_pipeline.training.metrics import DEFINITIONS

__all__ = ["load_runs", "build_table", "write_table", "KINDS"]

KINDS = ("table", "scaling", "val_test", "cross_corpus", "reference_sweep")


# ---------------------------------------------------------------- shared pieces

def feature_notes(runs: list[dict]) -> list[str]:
    notes = {}
    for r in runs:
        for stream, meta in (r.get("features") or {}).items():
            info = meta.get("info") or {}
            name = meta.get("extractor")
            if info.get("random_init"):
                notes[name] = (f"`{name}` features come from a RANDOMLY INITIALISED model "
                               f"({info.get('model_checksum', 'random-init')}), not pretrained weights: "
                               f"its numbers show the pipeline works, not what wav2vec can do")
            elif info.get("model"):
                notes[name] = f"`{name}` features come from `{info['model']}` ({info.get('model_checksum', '')})"
    return sorted(notes.values())


def paper_value(ref: dict, row: str | None, column: str, exp: dict):
    """The paper's number for our column; ``experiments.*.paper_columns`` maps our column to the paper's."""
    if not row:
        return None
    col = (exp.get("paper_columns") or {}).get(column, column)
    v = ((ref.get("rows") or {}).get(row) or {}).get(col)
    return v


def _fmt(v, spec: str = ".1f") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def _text(v) -> str:
    """A table cell for an optional label (None or NaN -> empty)."""
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _paper_cell(v) -> str:
    """The paper's number, or empty where the paper has none for this row (None / NaN)."""
    return _fmt(v, "g")


def _counts(d: dict, classes: list[str]) -> str:
    return ", ".join(f"{c} {_fmt(d.get(c, 0), 'g')}" for c in classes)


def _same(runs: list[dict], key: str):
    vals = {r.get(key) for r in runs}
    if len(vals) > 1:
        raise IncompleteResultsError(f"one table mixes {key} values {sorted(map(str, vals))}: "
                                     + ", ".join(f"{run_name(r)}: {r.get(key)}" for r in runs[:4]) + " ...")
    return vals.pop()


def _per_model_lines(label: str, per_model: dict[str, Counter]) -> list[str]:
    """One line when every system shares one value, else a sub-list per system."""
    values = {v for c in per_model.values() for v in c}
    if len(values) == 1:
        return [f"- **{label}** (all systems): {values.pop()}"]
    lines = [f"- **{label}**:"]
    for model, c in per_model.items():
        if len(c) == 1:
            lines.append(f"  - `{model}`: {next(iter(c))}")
        else:
            for v, n in c.most_common():
                lines.append(f"  - `{model}` ({n} runs): {v}")
    return lines


def features_text(run: dict) -> str:
    """Each input stream's feature as the run read it: store, extractor, the settings its
    config entry gives (a departure from the extractor's defaults, e.g. a demo's shorter
    DFT, is stated here), and its frame rate."""
    parts = []
    for stream, meta in sorted((run.get("features") or {}).items()):
        cfg = meta.get("config") or {}
        settings = [f"{k}={v}" for k, v in sorted((cfg.get("params") or {}).items()) if v is not None]
        settings += [f"{k}={cfg[k]}" for k in ("max_seconds", "speed") if cfg.get(k) is not None]
        rate = meta.get("frame_rate")
        parts.append(f"{stream} `{Path(str(meta.get('store', '?'))).stem}` ({meta.get('extractor')}"
                     + (f"; set in the config: {', '.join(settings)}" if settings else "; extractor defaults")
                     + (f"; {float(rate):g} frames/s" if rate else "") + ")")
    return "; ".join(parts) or "not recorded"


def _class_count_lines(runs: list[dict], classes: list[str]) -> list[str]:
    test, val = {}, {}
    for r in runs:
        cc = require(r, "class_counts")
        for part, store in (("test", test), ("val", val)):
            counts = cc.get(part)
            if counts is None:
                continue
            prev = store.setdefault(r["fold"], (r, counts))
            if prev[1] != counts:
                raise IncompleteResultsError(f"fold {r['fold']}: {run_name(r)} has {part} class counts {counts}, "
                                             f"{run_name(prev[0])} has {prev[1]}")
    train = defaultdict(list)
    for r in runs:
        train[size_str(r)].append(r["class_counts"].get("train") or {})
    lines = [f"- **Class counts** (utterances): test parts summed over the {len(test)} folds: "
             + _counts({c: sum(v[1].get(c, 0) for v in test.values()) for c in classes}, classes)]
    if any(v[1] for v in val.values()):
        lines[-1] += ("; validation parts summed over folds: "
                      + _counts({c: sum(v[1].get(c, 0) for v in val.values()) for c in classes}, classes))
    for size in sorted(train, key=size_key):
        mean = {c: round(float(np.mean([t.get(c, 0) for t in train[size]])), 1) for c in classes}
        lines[-1] += f"; training part per fold at size {size} (mean over runs): " + _counts(mean, classes)
    return lines


def run_header(exp_name: str, exp: dict, runs: list[dict], grouped: dict[str, list[dict]],
               corpus_info: str, metrics: list[str]) -> list[str]:
    corpus = _same(runs, "corpus")
    protocol = _same(runs, "protocol")
    labels = check_same_labels(runs)
    classes = list(labels["classes"])
    folds = {}
    for r in sorted(runs, key=lambda r: r["fold"]):
        folds.setdefault(r["fold"], r)
    fold_desc = "; ".join(
        f"{f}: test {r.get('test_speaker') or r.get('test_session')}"
        + (f", validation {r['val_speaker']}" if r.get("val_speaker") else "") for f, r in folds.items())
    has_val = any(r.get("val_speaker") for r in runs)
    merge = labels.get("merge") or {}
    merged = ", ".join(f"{k} → {v}" for k, v in merge.items() if k != v)
    lines = [f"# {exp.get('title', exp_name)}", "",
             f"- **Corpus**: {corpus}{corpus_info}",
             f"- **Protocol**: `{protocol}`: {runs[0].get('protocol_description', '')} ({len(folds)} folds)",
             f"- **Folds**: {fold_desc}",
             "- **Validation split**: " + (
                 "the held-out validation speaker(s) of each fold (named above), in neither the training nor "
                "the test part"
                 if has_val else "none (no validation part; nothing is tuned on held-out data)"),
             f"- **Training data**: {', '.join(str(s) for s in exp.get('sizes', []))} examples per class "
             f"(drawn from each fold's training part; `full` = all of it); seeds {exp.get('seeds')}"]
    lines += _per_model_lines("Epoch selection", {m: Counter(r.get("epoch_selection") for r in rs)
                                                  for m, rs in grouped.items()})
    lines.append(f"- **Labels**: column `{labels.get('column')}`, classes {', '.join(classes)}"
                 + (f"; merged: {merged}" if merged else ""))
    lines += _class_count_lines(runs, classes)
    lines.append("- **Metrics**: " + "; ".join(f"{m} = {DEFINITIONS[m]}" for m in ("UA", "WA")))
    lines += _per_model_lines("Training options", {m: Counter(options_text(r) for r in rs)
                                                   for m, rs in grouped.items()})
    lines += _per_model_lines("Features", {m: Counter(features_text(r) for r in rs) for m, rs in grouped.items()})
    for model, rs in grouped.items():
        cl = [r.get("classical") for r in rs if r.get("classical")]
        if cl:
            chosen = Counter(", ".join(f"{k}={v}" for k, v in sorted((c.get("chosen") or {}).items())) for c in cl)
            lines.append(f"- **Model selection** `{model}`: {cl[0].get('selection', '')}; chosen: "
                         + "; ".join(f"{v} ({n} runs)" for v, n in chosen.most_common()))
        refs = {(r.get("reference") or {}).get("rule") for r in rs if r.get("reference")}
        if refs:
            lines.append(f"- **Reference utterance** `{model}`: " + " / ".join(sorted(refs)))
    return lines


def _paper_lines(ref: dict, exp: dict, used_rows: set, columns: list[str]) -> list[str]:
    others = [(row, v) for row, v in (ref.get("rows") or {}).items() if row not in used_rows]
    if not others:
        return []
    cols = [c for c in columns if any(c in v for _, v in others)]
    for _, v in others:
        cols += [c for c in v if c not in cols]
    lines = ["", "Other rows of the paper's table (no counterpart run here):", "",
             "| Paper row | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for row, v in others:
        lines.append(f"| {row} | " + " | ".join(_paper_cell(v.get(c)) for c in cols) + " |")
    return lines


def _paper_source_lines(ref: dict, runs: list[dict]) -> list[str]:
    lines = []
    if ref:
        lines.append(f"- **Paper**: {ref['source']}")
    for note in feature_notes(runs):
        lines.append(f"- **Note**: {note}")
    return lines


def _model_cell(model: str, row, ref_model: str) -> str:
    cell = model + (" (ref)" if model == ref_model else "")
    if row.get("still_falling_runs", 0):
        cell += f" {cmp.STILL_FALLING_MARK}"
    return cell


def _order(df: pd.DataFrame, exp: dict) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(exp["models"])}
    return df.sort_values(by=["model", "size_per_class"],
                          key=lambda c: c.map(order) if c.name == "model" else c.map(size_key)).reset_index(drop=True)


def _train_per_class(rs: list[dict]) -> float:
    return round(float(np.mean([np.mean(list(require(r, "n_train_per_class").values())) for r in rs])), 1)


# ---------------------------------------------------------------- kind: table / scaling

def _stat_lines(exp: dict, info: dict, method: str) -> list[str]:
    return ["- **Ours**: mean over folds × seeds, in percent, with its 95% confidence interval",
            "- " + cmp.ci_text(method),
            "- " + cmp.tests_text(info["reference"], info["m_t"], info["m_w"]),
            "- **Per speaker**: UA of each test speaker (mean over seeds) is in the CSV (`UA_speaker_<id>`) and in "
            "the per-speaker plot; 'speakers better / worse' counts the speakers on which a system's UA is above / "
            "below the reference's"]


def _runs_table(exp_name: str, exp: dict, runs: list[dict], corpus_info: str):
    metrics = exp.get("metrics", ["UA", "WA"])
    method = cmp.ci_method(exp)
    ref = paper_entry(exp.get("paper"))
    grouped = by_model(runs, list(exp["models"]))
    missing = [m for m, rs in grouped.items() if not rs]
    if missing:
        raise IncompleteResultsError(f"experiment {exp_name}: no result files for models {missing}")
    df, info = cmp.compare_runs(exp, grouped, metrics)
    df = _order(df, exp)
    df.insert(1, "paper_row", df["model"].map(exp["models"]))
    df.insert(3, "train_per_class", [_train_per_class([r for r in grouped[x.model] if size_str(r) == x.size_per_class])
                                     for x in df.itertuples()])
    for m in metrics:
        df[f"{m}_paper"] = [paper_value(ref, row, m, exp) for row in df["paper_row"]]

    lines = run_header(exp_name, exp, runs, grouped, corpus_info, metrics)
    lines += _stat_lines(exp, info, method) + _paper_source_lines(ref, runs) + [""]
    head = ["Model", "Paper row", "Per class"] + [h for m in metrics for h in (f"{m} ours [95% CI]", f"{m} paper")] \
        + ["Runs"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        cells = [_model_cell(r["model"], r, info["reference"]), _text(r["paper_row"]),
                 f"{r['size_per_class']} ({r['train_per_class']:g})"]
        for m in metrics:
            cells += [cmp.ci_cell(r, m, method), _paper_cell(r[f"{m}_paper"])]
        cells.append(str(r["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += cmp.still_falling_legend(df)
    lines += [""] + cmp.comparison_markdown(df, info, metrics)
    lines += cmp.convex_reference_lines(exp, grouped, "UA" if "UA" in metrics else metrics[0])
    lines += _paper_lines(ref, exp, set(df["paper_row"]), metrics)
    lines.append("")
    return "\n".join(lines), cmp.csv_frame(df)


# ---------------------------------------------------------------- kind: val_test

def _val_test_table(exp_name: str, exp: dict, runs: list[dict], corpus_info: str):
    metrics = exp.get("metrics", ["UA", "WA"])
    method = cmp.ci_method(exp)
    ref = paper_entry(exp.get("paper"))
    grouped = by_model(runs, list(exp["models"]))
    for r in runs:
        if r.get("val_metrics") is None:
            raise IncompleteResultsError(f"{run_name(r)}: val_metrics is null (no validation part), "
                                         "a val_test table needs a validation speaker per fold")
    df, info = cmp.compare_runs(exp, grouped, metrics)
    df = _order(df, exp)
    df.insert(1, "paper_row", df["model"].map(exp["models"]))
    for i, row in df.iterrows():
        rs = [r for r in grouped[row["model"]] if size_str(r) == row["size_per_class"]]
        for m in metrics:
            val = np.array([metric_value(r, m, "val_metrics") for r in rs]) * 100
            test = np.array([metric_value(r, m, "metrics") for r in rs]) * 100
            d_mean, d_lo, d_hi = stats.t_interval(test - val)
            df.loc[i, f"{m}_val"] = float(val.mean())
            df.loc[i, f"{m}_test"] = float(test.mean())
            df.loc[i, f"{m}_delta"] = d_mean
            df.loc[i, f"{m}_delta_t_lo"], df.loc[i, f"{m}_delta_t_hi"] = d_lo, d_hi
            for part in ("val", "test", "delta"):
                df.loc[i, f"{m}_{part}_paper"] = paper_value(ref, row["paper_row"], f"{m}_{part}", exp)

    lines = run_header(exp_name, exp, runs, grouped, corpus_info, metrics)
    lines += ["- **Validation** scores are on each fold's validation speaker at the selected epoch (the epoch "
              "was chosen on that part, so they lean optimistic); **test** scores on the fold's test speaker; "
              "Δ = test − validation per run, mean over runs with its 95% t-interval"]
    lines += _stat_lines(exp, info, method) + _paper_source_lines(ref, runs) + [""]
    head = ["Model", "Paper row", "Per class"]
    for m in metrics:
        head += [f"{m} val", f"{m} test [95% CI]", f"{m} Δ [95% CI]", f"{m} val paper", f"{m} test paper",
                 f"{m} Δ paper"]
    head.append("Runs")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        cells = [_model_cell(r["model"], r, info["reference"]), _text(r["paper_row"]), str(r["size_per_class"])]
        for m in metrics:
            lo, hi = r[f"{m}_delta_t_lo"], r[f"{m}_delta_t_hi"]
            delta = f"{r[f'{m}_delta']:+.1f}" + (f" [{lo:+.1f}, {hi:+.1f}]" if np.isfinite(lo) else " [n/a: 1 run]")
            cells += [f"{r[f'{m}_val']:.1f}", cmp.ci_cell(r, m, method), delta,
                      _paper_cell(r[f"{m}_val_paper"]), _paper_cell(r[f"{m}_test_paper"]),
                      _paper_cell(r[f"{m}_delta_paper"])]
        cells.append(str(r["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += cmp.still_falling_legend(df)
    lines += ["", "Paired tests below compare test scores.", ""] + cmp.comparison_markdown(df, info, metrics)
    lines += _paper_lines(ref, exp, set(df["paper_row"]),
                          [f"{m}_{p}" for m in metrics for p in ("val", "test", "delta")])
    lines.append("")
    return "\n".join(lines), cmp.csv_frame(df)


# ---------------------------------------------------------------- kind: cross_corpus

def _rule_text(rule) -> str:
    if isinstance(rule, dict):
        return f"`{rule.get('name', '')}`: {rule.get('description', '')}"
    return str(rule)


def _cross_corpus_table(exp_name: str, exp: dict, files: list[dict], corpus_info: str):
    ref = paper_entry(exp.get("paper"))
    models = list(exp["models"])
    ref_model = cmp.reference_model(exp)
    grouped = {m: [] for m in models}
    seen = {}
    for f in files:
        for key in ("model", "fold", "train_corpus", "eval_corpus", "rule", "n", "metrics"):
            require(f, key)
        if f["model"] not in grouped:
            raise IncompleteResultsError(f"{run_name(f)}: model '{f['model']}' is not in the experiment's models")
        k = (f["model"], f["fold"])
        if k in seen:
            raise IncompleteResultsError(f"two cross-corpus results for {k}: {seen[k]} and {run_name(f)}")
        seen[k] = run_name(f)
        grouped[f["model"]].append(f)
    missing = [m for m, fs in grouped.items() if not fs]
    if missing:
        raise IncompleteResultsError(f"experiment {exp_name}: no cross-corpus result files for models {missing}")
    train_corpus, eval_corpus = _same(files, "train_corpus"), _same(files, "eval_corpus")
    protocol = _same(files, "train_protocol")
    rules = sorted({_rule_text(f["rule"]) for f in files})
    if len(rules) > 1:
        raise IncompleteResultsError(f"one cross-corpus table mixes scoring rules: {rules}")
    ns = sorted({int(f["n"]) for f in files})
    extra = [m for m in ("UA", "WA") if all(m in f["metrics"] and f["metrics"][m] is not None for f in files)]
    cols = ["accuracy"] + extra

    rows = []
    for model, fs in grouped.items():
        acc = np.array([metric_value(f, "accuracy") for f in fs]) * 100
        mean, lo, hi = stats.t_interval(acc)
        row = {"model": model, "paper_row": exp["models"][model], "folds": len(fs), "mean": mean,
               "min": float(acc.min()), "max": float(acc.max()),
               "std": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"), "t_lo": lo, "t_hi": hi}
        for m in extra:
            row[f"{m}_mean"] = float(np.mean([metric_value(f, m) for f in fs]) * 100)
        for c in ("mean", "min", "max"):
            row[f"{c}_paper"] = paper_value(ref, row["paper_row"], c, exp)
        rows.append(row)
    df = pd.DataFrame(rows)

    comparisons = []
    ref_by_fold = {f["fold"]: f for f in grouped[ref_model]}
    for model, fs in grouped.items():
        if model == ref_model:
            continue
        mine = {f["fold"]: f for f in fs}
        if set(mine) != set(ref_by_fold):
            lines = [f"{run_name(ref_by_fold[k])} has no counterpart of '{model}'"
                     for k in sorted(set(ref_by_fold) - set(mine))]
            lines += [f"{run_name(mine[k])} has no counterpart of the reference '{ref_model}'"
                      for k in sorted(set(mine) - set(ref_by_fold))]
            raise IncompleteResultsError(f"{model} vs {ref_model}: unpaired folds:\n  " + "\n  ".join(lines))
        folds = sorted(mine)
        a = np.array([metric_value(ref_by_fold[k], "accuracy") for k in folds]) * 100
        b = np.array([metric_value(mine[k], "accuracy") for k in folds]) * 100
        comparisons.append((model, stats.paired_tests(a, b)))
    t_adj = stats.holm([c.t_p for _, c in comparisons])
    w_adj = stats.holm([c.w_p for _, c in comparisons])
    for col in ("diff", "pairs", "t_p", "t_p_holm", "w_p", "w_p_holm", "test_note"):
        df[f"accuracy_vs_ref_{col}"] = None
    for (model, res), ta, wa in zip(comparisons, t_adj, w_adj):
        i = df.index[df["model"] == model][0]
        for col, v in (("diff", res.mean_diff), ("pairs", res.n_pairs), ("t_p", res.t_p), ("t_p_holm", ta),
                       ("w_p", res.w_p), ("w_p_holm", wa), ("test_note", res.note)):
            df.loc[i, f"accuracy_vs_ref_{col}"] = v
    info = {"reference": ref_model, "m_t": int(np.isfinite([c.t_p for _, c in comparisons]).sum()),
            "m_w": int(np.isfinite([c.w_p for _, c in comparisons]).sum())}

    classes_line = require(files[0], "class_counts")
    counts = ", ".join(f"{k} {v}" for k, v in classes_line.items()) if all(
        isinstance(v, (int, float)) for v in classes_line.values()) else str(classes_line)
    lines = [f"# {exp.get('title', exp_name)}", "",
             f"- **Trained on**: {train_corpus}{corpus_info}, protocol `{protocol}`, one model per fold "
             f"({len({f['fold'] for f in files})} folds; the training table of that experiment states their options)",
             f"- **Evaluated on**: {eval_corpus}, every fold's model on the same utterances; utterances scored: "
             + ", ".join(map(str, ns)) + ("" if len(ns) == 1 else " (differs between files)"),
             f"- **Scoring rule**: {rules[0]}",
             f"- **Class counts of the evaluation corpus**: {counts}",
             "- **Metric**: accuracy = fraction of scored utterances whose prediction the scoring rule counts as "
             "correct" + ("; " + "; ".join(f"{m} = {DEFINITIONS[m]}" for m in extra) if extra else ""),
             "- **Ours**: mean, minimum and maximum over the folds' models, in percent; the mean with its 95% "
             "t-interval over folds (no bootstrap: cross-corpus files hold no per-utterance predictions)",
             "- " + cmp.tests_text(ref_model, info["m_t"], info["m_w"], unit="the same folds' models (pairs = fold)")]
    lines += _paper_source_lines(ref, []) + [""]
    head = ["Model", "Paper row", "Folds", "mean [95% CI]", "min", "max", "mean paper", "min paper", "max paper"] \
        + [f"{m} mean" for m in extra]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        ci = f" [{r['t_lo']:.1f}, {r['t_hi']:.1f}]" if np.isfinite(r["t_lo"]) else " [n/a: 1 fold]"
        cells = [r["model"] + (" (ref)" if r["model"] == ref_model else ""), _text(r["paper_row"]), str(r["folds"]),
                 f"{r['mean']:.1f}{ci}", f"{r['min']:.1f}", f"{r['max']:.1f}",
                 _paper_cell(r["mean_paper"]), _paper_cell(r["min_paper"]), _paper_cell(r["max_paper"])]
        cells += [f"{r[f'{m}_mean']:.1f}" for m in extra]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"### Against the reference `{ref_model}`", "",
              "| System | Metric | Δ vs ref (pp) | t-test p (Holm) | Wilcoxon p (Holm) | Pairs |",
              "|---|---|---|---|---|---|"]
    notes = []
    for _, r in df.iterrows():
        if r["model"] == ref_model:
            continue
        lines.append(f"| {r['model']} | accuracy | {r['accuracy_vs_ref_diff']:+.1f} | "
                     f"{cmp._p_cell(r['accuracy_vs_ref_t_p'], r['accuracy_vs_ref_t_p_holm'])} | "
                     f"{cmp._p_cell(r['accuracy_vs_ref_w_p'], r['accuracy_vs_ref_w_p_holm'])} | "
                     f"{r['accuracy_vs_ref_pairs']} |")
        if r["accuracy_vs_ref_test_note"]:
            notes.append(f"- {r['model']}: {r['accuracy_vs_ref_test_note']}")
    if notes:
        lines += [""] + notes
    lines += _paper_lines(ref, exp, set(df["paper_row"]), ["mean", "min", "max"])
    lines.append("")
    return "\n".join(lines), cmp.csv_frame(df)


# ---------------------------------------------------------------- kind: reference_sweep

def _sweep_values(r: dict, metric: str) -> dict[int, float]:
    out = {}
    for e in r["metrics_by_reference"]:
        v = e.get(metric)
        if v is None or not np.isfinite(float(v)):
            raise IncompleteResultsError(f"{run_name(r)}: metrics_by_reference[{e.get('index')}].{metric} is {v!r}")
        out[int(e["index"])] = 100 * float(v)
    return out


def _reference_sweep_table(exp_name: str, exp: dict, runs: list[dict], corpus_info: str):
    metrics = exp.get("metrics", ["UA"])
    method = cmp.ci_method(exp)
    ref = paper_entry(exp.get("paper"))
    grouped = by_model(runs, list(exp["models"]))
    sweep_models = []
    for model, rs in grouped.items():
        has = [bool(r.get("metrics_by_reference")) for r in rs]
        if any(has) and not all(has):
            lacking = [run_name(r) for r, h in zip(rs, has) if not h]
            raise IncompleteResultsError(f"{model}: some runs have metrics_by_reference, these lack it: {lacking}")
        if rs and all(has):
            sweep_models.append(model)
    if not sweep_models:
        raise IncompleteResultsError(f"experiment {exp_name}: no system has metrics_by_reference "
                                     "(models with a reference utterance, evaluated with every reference choice)")
    sweep_ref = exp.get("reference") if exp.get("reference") in sweep_models else sweep_models[0]

    df, info = cmp.compare_runs(exp, grouped, metrics)
    df = _order(df, exp)
    df.insert(1, "paper_row", df["model"].map(exp["models"]))
    per_key = {}  # (model, size) -> {metric: {(fold, seed, k): value}}
    for model in sweep_models:
        for r in grouped[model]:
            d = per_key.setdefault((model, size_str(r)), {m: {} for m in metrics})
            for m in metrics:
                for k, v in _sweep_values(r, m).items():
                    d[m][(r["fold"], int(r["seed"]), k)] = v
    for i, row in df.iterrows():
        key = (row["model"], row["size_per_class"])
        for m in metrics:
            for c in ("mean", "std"):
                df.loc[i, f"{m}_sweep_{c}_paper"] = paper_value(ref, row["paper_row"], f"{m}_{c}", exp)
            if key not in per_key:
                continue
            vals = per_key[key][m]
            ks = sorted({k for _, _, k in vals})
            by_k = np.array([np.mean([v for (f, s, kk), v in vals.items() if kk == k]) for k in ks])
            df.loc[i, f"{m}_sweep_refs"] = len(ks)
            df.loc[i, f"{m}_sweep_mean"] = float(by_k.mean())
            df.loc[i, f"{m}_sweep_std"] = float(by_k.std(ddof=1)) if len(by_k) > 1 else float("nan")
            for k, v in zip(ks, by_k):
                df.loc[i, f"{m}_ref{k}"] = float(v)

    sweep_tests = []
    for model in sweep_models:
        if model == sweep_ref:
            continue
        for size in sorted({s for (mm, s) in per_key if mm == model}, key=size_key):
            for m in metrics:
                a_map = per_key.get((sweep_ref, size), {}).get(m, {})
                b_map = per_key[(model, size)][m]
                if set(a_map) != set(b_map):
                    only_a = sorted(set(a_map) - set(b_map))
                    only_b = sorted(set(b_map) - set(a_map))
                    raise IncompleteResultsError(
                        f"reference sweep {model} vs {sweep_ref}, size {size}: (fold, seed, reference index) "
                        f"only in {sweep_ref}: {only_a[:10]}; only in {model}: {only_b[:10]}")
                keys = sorted(a_map)
                res = stats.paired_tests([a_map[k] for k in keys], [b_map[k] for k in keys])
                sweep_tests.append((model, size, m, res))
    t_adj = stats.holm([t[3].t_p for t in sweep_tests])

    lines = run_header(exp_name, exp, runs, grouped, corpus_info, metrics)
    lines += [f"- **Reference sweep**: systems with a reference input ({', '.join(sweep_models)}) are scored once per "
              "reference choice k (the k-th neutral utterance of each test speaker, in corpus order). For each k the "
              "score is averaged over folds × seeds; 'mean (std)' is over the k values, as the paper's Table 4",
              f"- **Sweep test**: two-sided paired t-test (scipy.stats.ttest_rel) of each system against "
              f"`{sweep_ref}` over pairs with the same (fold, seed, reference index k), Holm-corrected over the "
              f"m = {int(np.isfinite([t[3].t_p for t in sweep_tests]).sum())} comparisons of this sweep. "
              "The pairs of one fold share one trained model, so they are not independent: like the paper's test, "
              "this p-value is optimistic",
              "- The CI / paired tests further below use each run's standard test score (its fixed test reference)"]
    lines += _stat_lines(exp, info, method) + _paper_source_lines(ref, runs) + [""]
    head = ["Model", "Paper row", "Per class"]
    for m in metrics:
        head += [f"{m} mean (std) over references", "References", f"{m} paper mean (std)"]
    head.append("Runs")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        cells = [_model_cell(r["model"], r, sweep_ref if r["model"] in sweep_models else ""), _text(r["paper_row"]),
                 str(r["size_per_class"])]
        for m in metrics:
            mean = r.get(f"{m}_sweep_mean")
            if mean is None or not np.isfinite(mean):
                cells += ["no reference input", "", ""]
                continue
            std = r.get(f"{m}_sweep_std")
            pm, ps = r.get(f"{m}_sweep_mean_paper"), r.get(f"{m}_sweep_std_paper")
            cells += [f"{mean:.1f} ({_fmt(std)})", str(int(r[f"{m}_sweep_refs"])),
                      "" if pm is None or pd.isna(pm) else f"{pm:g} ({_paper_cell(ps)})"]
        cells.append(str(r["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += cmp.still_falling_legend(df)
    if sweep_tests:
        lines += ["", f"### Reference sweep: against `{sweep_ref}`", "",
                  "| System | Per class | Metric | Δ (pp) | t | p (Holm) | Pairs |", "|---|---|---|---|---|---|---|"]
        for (model, size, m, res), ta in zip(sweep_tests, t_adj):
            lines.append(f"| {model} | {size} | {m} | {res.mean_diff:+.2f} | {_fmt(res.t_stat, '.2f')} | "
                         f"{cmp._p_cell(res.t_p, ta)} | {res.n_pairs} |")
            i = df.index[(df["model"] == model) & (df["size_per_class"] == size)][0]
            df.loc[i, f"{m}_sweep_vs_ref_diff"] = res.mean_diff
            df.loc[i, f"{m}_sweep_vs_ref_t"] = res.t_stat
            df.loc[i, f"{m}_sweep_vs_ref_t_p"] = res.t_p
            df.loc[i, f"{m}_sweep_vs_ref_t_p_holm"] = ta
            df.loc[i, f"{m}_sweep_vs_ref_pairs"] = res.n_pairs
        notes = [f"- {model} ({size}, {m}): {res.note}" for model, size, m, res in sweep_tests if res.note]
        lines += [""] + notes if notes else []
    lines += [""] + cmp.comparison_markdown(df, info, metrics)
    lines += _paper_lines(ref, exp, set(df["paper_row"]), [f"{m}_{c}" for m in metrics for c in ("mean", "std")])
    lines.append("")
    return "\n".join(lines), cmp.csv_frame(df)


# ---------------------------------------------------------------- entry points

_BUILDERS = {"table": _runs_table, "scaling": _runs_table, "val_test": _val_test_table,
             "cross_corpus": _cross_corpus_table, "reference_sweep": _reference_sweep_table}


def build_table(exp_name: str, exp: dict, runs: list[dict], corpus_info: str = "") -> tuple[str, pd.DataFrame]:
    kind = exp.get("kind", "table")
    if kind not in _BUILDERS:
        raise ConfigError(f"experiments.{exp_name}.kind: '{kind}' is not one of {list(KINDS)}")
    if not runs:
        raise IncompleteResultsError(f"experiment {exp_name}: no result files")
    return _BUILDERS[kind](exp_name, exp, runs, corpus_info)


def write_table(exp_name: str, exp: dict, run_paths: list[str], out_md: str, out_csv: str,
                corpus_info: str = "") -> str:
    """The experiment's Markdown (with confusion matrices where asked) and CSV; returns the Markdown.

    ``run_paths`` are training result files, or cross-corpus result files for kind cross_corpus.
    """
    from ser_pipeline.reporting.plots import confusion_markdown

    runs = load_runs(run_paths)
    md, df = build_table(exp_name, exp, runs, corpus_info)
    if exp.get("confusion"):
        md += "\n" + confusion_markdown(exp, runs)
    write_text(out_csv, df.to_csv(index=False))
    write_text(out_md, md)
    return md
