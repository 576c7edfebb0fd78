"""Per-system intervals, paired tests against the table's reference system, per-speaker scores.

One place computes what every comparison table prints, so each table kind states the same
methods in the same words. The numbers come from ser_pipeline.reporting.stats; this module
only pairs runs, refuses incomplete pairings, and lays out the results.
"""
from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pandas as pd

from ser_pipeline.errors import ConfigError
from ser_pipeline.reporting import stats
from ser_pipeline.reporting.runs import (all_test_predictions, metric_value, pair_key, run_name, size_key,
                                         size_str)
from ser_pipeline.reporting.stats import IncompleteResultsError

CI_METHODS = ("t", "bootstrap")
STILL_FALLING_MARK = "†"
SIGNIFICANT_MARK = "*"


def reference_model(exp: dict) -> str:
    models = list(exp["models"])
    ref = exp.get("reference", models[0])
    if ref not in models:
        raise ConfigError(f"experiments.*.reference: '{ref}' is not one of the experiment's models {models}")
    return ref


def ci_method(exp: dict) -> str:
    m = exp.get("ci", "t")
    if m not in CI_METHODS:
        raise ConfigError(f"experiments.*.ci: '{m}' is not one of {list(CI_METHODS)}")
    return m


def ci_text(method: str) -> str:
    t = ("t-interval over the per-run values (folds × seeds): mean ± t(0.975, n−1)·s/√n")
    b = (f"percentile bootstrap over test utterances: {stats.BOOTSTRAP_SAMPLES} resamples of each fold's test "
         f"part (within the fold, shared by every run of that fold; seed {stats.BOOTSTRAP_SEED}) of the "
         "mean-over-runs score; training randomness not included")
    printed, other = (t, b) if method == "t" else (b, t)
    return (f"**95% CI** (printed in brackets): {printed}. The CSV also holds the "
            f"{'bootstrap' if method == 't' else 't'} interval: {other}")


def tests_text(ref: str, m_t: int, m_w: int, unit: str = "the same (fold, seed, training size) runs") -> str:
    return (f"**Paired tests** against the reference system `{ref}` over {unit}: two-sided paired t-test "
            f"(scipy.stats.ttest_rel, {stats.MIN_T_PAIRS}+ pairs) and Wilcoxon signed-rank test "
            f"(scipy.stats.wilcoxon, zero differences dropped, run with {stats.MIN_WILCOXON_NONZERO}+ non-zero "
            f"differences). p-values are Holm-corrected over the comparisons of this table, separately per test "
            f"(t-test m = {m_t}, Wilcoxon m = {m_w}); {SIGNIFICANT_MARK} = corrected p < {stats.ALPHA}. "
            "Δ = system − reference in percentage points, mean over pairs")


def _pairs(ref_runs: list[dict], runs: list[dict], values, ref: str, model: str, what: str):
    """Values of both systems on the same keys; a key on one side only is an error naming the runs."""
    a = {pair_key(r): r for r in ref_runs}
    b = {pair_key(r): r for r in runs}
    only_ref = sorted(set(a) - set(b))
    only_model = sorted(set(b) - set(a))
    if only_ref or only_model:
        lines = [f"{run_name(a[k])} has no counterpart run of '{model}'" for k in only_ref]
        lines += [f"{run_name(b[k])} has no counterpart run of the reference '{ref}'" for k in only_model]
        raise IncompleteResultsError(f"{what}: unpaired runs (size, fold, seed must match):\n  " + "\n  ".join(lines))
    keys = sorted(a, key=lambda k: (size_key(k[0]), k[1], k[2]))
    return np.array([values(a[k]) for k in keys]), np.array([values(b[k]) for k in keys]), keys


def compare_runs(exp: dict, grouped: dict[str, list[dict]], metrics: list[str], part: str = "metrics",
                 with_predictions: bool = True, bootstrap: bool = True) -> tuple[pd.DataFrame, dict]:
    """One row per (model, size): mean, std, both intervals, the paired tests against the reference,
    per-speaker UA and convergence flags. Returns (rows, info for the header)."""
    ref = reference_model(exp)
    classes = None
    preds = {}
    if with_predictions:
        all_runs = [r for rs in grouped.values() for r in rs]
        for r, p in zip(all_runs, all_test_predictions(all_runs)):
            preds[id(r)] = p
        classes = all_runs[0]["labels"]["classes"]
    for model, rs in grouped.items():  # every (size, fold, seed) of the reference, and only those
        if model != ref:
            _pairs(grouped[ref], rs, lambda r: 0.0, ref, model, f"{model} vs {ref}")
    rows, comparisons = [], []
    speaker_means = {}
    for model, rs in grouped.items():
        by_size = defaultdict(list)
        for r in rs:
            by_size[size_str(r)].append(r)
        for size in sorted(by_size, key=size_key):
            sel = by_size[size]
            row = {"model": model, "size_per_class": size, "runs": len(sel),
                   "folds": len({r["fold"] for r in sel}), "seeds": len({r["seed"] for r in sel})}
            for m in metrics:
                vals = np.array([metric_value(r, m, part) for r in sel]) * 100
                mean, lo, hi = stats.t_interval(vals)
                row[f"{m}_mean"] = mean
                row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
                row[f"{m}_t_lo"], row[f"{m}_t_hi"] = lo, hi
            if with_predictions and bootstrap:
                folds = defaultdict(list)
                for r in sel:
                    folds[r["fold"]].append((preds[id(r)]["y_true"], preds[id(r)]["y_pred"]))
                boot = stats.bootstrap_interval(dict(folds), len(classes))
                for m in metrics:
                    if m in boot:
                        row[f"{m}_boot_lo"], row[f"{m}_boot_hi"] = (100 * boot[m][0], 100 * boot[m][1])
            if with_predictions:
                spk = defaultdict(list)
                for r in sel:
                    p = preds[id(r)]
                    for s, ua in stats.per_speaker_ua(p["y_true"], p["y_pred"], p["speaker"], len(classes)).items():
                        spk[s].append(100 * ua)
                speaker_means[(model, size)] = {s: float(np.mean(v)) for s, v in spk.items()}
                for s, v in sorted(speaker_means[(model, size)].items()):
                    row[f"UA_speaker_{s}"] = v
            falling = [r for r in sel if (r.get("convergence") or {}).get("still_falling")]
            row["still_falling_runs"] = len(falling)
            row["_still_falling_rules"] = sorted({r["convergence"].get("rule", "") for r in falling})
            row["_epoch_chosen_on_val"] = any((r.get("training") or {}).get("epochs_from") == "inner_val"
                                              or (r.get("training") or {}).get("select_on_val") for r in falling)
            rows.append(row)
            if model != ref:
                ref_sel = [r for r in grouped[ref] if size_str(r) == size]
                for m in metrics:
                    a, b, keys = _pairs(ref_sel, sel, lambda r, m=m: 100 * metric_value(r, m, part), ref, model,
                                        f"{model} vs {ref}, {m}, size {size}")
                    res = stats.paired_tests(a, b)
                    comparisons.append(((model, size, m), res))
    df = pd.DataFrame(rows)
    t_adj = stats.holm([res.t_p for _, res in comparisons])
    w_adj = stats.holm([res.w_p for _, res in comparisons])
    by_key = {}
    for (key, res), ta, wa in zip(comparisons, t_adj, w_adj):
        by_key[key] = (res, ta, wa)
    for m in metrics:
        for col in ("diff", "pairs", "t_stat", "t_p", "t_p_holm", "w_stat", "w_p", "w_p_holm", "test_note"):
            df[f"{m}_vs_ref_{col}"] = None
    if with_predictions:
        df["speakers_better_than_ref"] = None
        df["speakers_worse_than_ref"] = None
        df["speakers"] = [len(speaker_means[(r.model, r.size_per_class)]) for r in df.itertuples()]
    for i, row in df.iterrows():
        for m in metrics:
            key = (row["model"], row["size_per_class"], m)
            if key not in by_key:
                continue
            res, ta, wa = by_key[key]
            df.loc[i, f"{m}_vs_ref_diff"] = res.mean_diff
            df.loc[i, f"{m}_vs_ref_pairs"] = res.n_pairs
            df.loc[i, f"{m}_vs_ref_t_stat"] = res.t_stat
            df.loc[i, f"{m}_vs_ref_t_p"] = res.t_p
            df.loc[i, f"{m}_vs_ref_t_p_holm"] = ta
            df.loc[i, f"{m}_vs_ref_w_stat"] = res.w_stat
            df.loc[i, f"{m}_vs_ref_w_p"] = res.w_p
            df.loc[i, f"{m}_vs_ref_w_p_holm"] = wa
            df.loc[i, f"{m}_vs_ref_test_note"] = res.note
        if with_predictions and row["model"] != ref:
            mine = speaker_means[(row["model"], row["size_per_class"])]
            theirs = speaker_means.get((ref, row["size_per_class"]), {})
            if set(mine) != set(theirs):
                raise IncompleteResultsError(
                    f"{row['model']} (size {row['size_per_class']}) was scored on speakers {sorted(mine)}, "
                    f"the reference {ref} on {sorted(theirs)}")
            df.loc[i, "speakers_better_than_ref"] = sum(mine[s] > theirs[s] for s in mine)
            df.loc[i, "speakers_worse_than_ref"] = sum(mine[s] < theirs[s] for s in mine)
    info = {"reference": ref, "m_t": int(np.isfinite([r.t_p for _, r in comparisons]).sum()),
            "m_w": int(np.isfinite([r.w_p for _, r in comparisons]).sum()), "speaker_means": speaker_means}
    return df, info


def ci_cell(row, m: str, method: str) -> str:
    lo, hi = (row.get(f"{m}_t_lo"), row.get(f"{m}_t_hi")) if method == "t" else \
        (row.get(f"{m}_boot_lo"), row.get(f"{m}_boot_hi"))
    mean = row[f"{m}_mean"]
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        why = "1 run" if method == "t" else "no bootstrap"
        return f"{mean:.1f} [n/a: {why}]"
    return f"{mean:.1f} [{lo:.1f}, {hi:.1f}]"


def _p_cell(p, p_holm) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    mark = SIGNIFICANT_MARK if p_holm is not None and np.isfinite(p_holm) and p_holm < stats.ALPHA else ""
    return f"{stats.format_p(p)} ({stats.format_p(p_holm)}){mark}"


def comparison_markdown(df: pd.DataFrame, info: dict, metrics: list[str], with_speakers: bool = True) -> list[str]:
    """The 'vs reference' table: Δ, both tests (raw p, Holm-corrected p in brackets), pairs, speakers."""
    ref = info["reference"]
    head = ["System", "Per class", "Metric", "Δ vs ref (pp)", "t-test p (Holm)", "Wilcoxon p (Holm)", "Pairs"]
    if with_speakers:
        head.append("Speakers better / worse than ref (UA)")
    lines = [f"### Against the reference `{ref}`", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for _, row in df.iterrows():
        if row["model"] == ref:
            continue
        for m in metrics:
            diff = row[f"{m}_vs_ref_diff"]
            cells = [row["model"], str(row["size_per_class"]), m, f"{diff:+.1f}",
                     _p_cell(row[f"{m}_vs_ref_t_p"], row[f"{m}_vs_ref_t_p_holm"]),
                     _p_cell(row[f"{m}_vs_ref_w_p"], row[f"{m}_vs_ref_w_p_holm"]),
                     str(row[f"{m}_vs_ref_pairs"])]
            if with_speakers:
                cells.append(f"{row['speakers_better_than_ref']} / {row['speakers_worse_than_ref']} "
                             f"of {row['speakers']}" if m == metrics[0] else "")
            lines.append("| " + " | ".join(cells) + " |")
            if row[f"{m}_vs_ref_test_note"]:
                notes.append(f"{row['model']} ({row['size_per_class']}, {m}): {row[f'{m}_vs_ref_test_note']}")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines.append("")
    return lines


def _collapse_windows(rules: list[str]) -> list[str]:
    """Rules that differ only in their window k (a tenth of the epochs each run trained) as one line."""
    pattern = re.compile(r"last (\d+) epochs vs the \1 before")
    ks = sorted({int(m.group(1)) for r in rules for m in [pattern.search(r)] if m})
    generic = {pattern.sub("last k epochs vs the k before", r) for r in rules}
    if len(ks) > 1 and len(generic) == 1:
        return [f"{generic.pop()} (k = max(2, a tenth of the epochs the run trained): here k = {ks[0]}–{ks[-1]})"]
    return rules


def still_falling_legend(df: pd.DataFrame) -> list[str]:
    flagged = df[df["still_falling_runs"] > 0]
    if flagged.empty:
        return []
    rules = _collapse_windows(sorted({rule for rs in flagged["_still_falling_rules"] for rule in rs}))
    early = bool(flagged["_epoch_chosen_on_val"].any()) if "_epoch_chosen_on_val" in flagged else False
    lines = [f"{STILL_FALLING_MARK} Training had not converged in some runs of this row (result field "
             f"`convergence.still_falling`); rule: " + " / ".join(rules or ["(not stated)"]) + ". "
             + ("Where the epoch count was chosen on validation UA, a run stops where validation UA peaked, "
                "so its training loss may still be falling by design. " if early else "")
             + "Runs flagged: "
             + ", ".join(f"{r.model} ({r.size_per_class}): {r.still_falling_runs} of {r.runs}"
                         for r in flagged.itertuples())]
    return ["", *lines]


CONVEX_MARGIN = 2.0  # percentage points a head may trail its convex reference (issue: heads trained to convergence)


def convex_reference_lines(exp: dict, grouped: dict[str, list[dict]], metric: str = "UA") -> list[str]:
    """Each head against the convex model on the same pooled features, paired over runs.

    A linear head and a logistic regression on the same pooled frames share a hypothesis
    class; a gap beyond the margin means the head's optimisation (or its epoch choice)
    stopped short, unless the interval of the paired difference is too wide to say.
    """
    pairs = exp.get("convex_references") or {}
    if not pairs:
        return []
    lines = [f"### Heads against their convex reference ({metric})", "",
             f"A head and a convex model on the same pooled features share a hypothesis class; the head is "
             f"expected within {CONVEX_MARGIN:g} points of it. Δ = head − reference over the same (fold, seed, "
             f"size) runs, with the 95% t-interval of the paired differences.", "",
             "| Head | Convex reference | Per class | Δ (pp) [95% CI] | Pairs | Head's epochs (chosen) | Verdict |",
             "|---|---|---|---|---|---|---|"]
    trailing = False
    for head, convex in pairs.items():
        sizes = sorted({size_str(r) for r in grouped[head]}, key=size_key)
        for size in sizes:
            a, b, _ = _pairs([r for r in grouped[convex] if size_str(r) == size],
                             [r for r in grouped[head] if size_str(r) == size],
                             lambda r: 100 * metric_value(r, metric, "metrics"), convex, head,
                             f"convex reference {head} vs {convex}")
            mean, lo, hi = stats.t_interval(b - a)
            if mean >= -CONVEX_MARGIN:
                verdict = f"within {CONVEX_MARGIN:g} points" + (" (head above)" if mean > CONVEX_MARGIN else "")
            elif np.isfinite(hi) and hi >= -CONVEX_MARGIN:
                verdict = (f"trails by {-mean:.1f} points, but the interval reaches −{CONVEX_MARGIN:g}: "
                           f"too few test utterances / folds to tell")
            else:
                verdict = f"trails by more than {CONVEX_MARGIN:g} points: the head stops short of the convex model's solution"
            trailing = trailing or mean < -CONVEX_MARGIN
            ci = f" [{lo:+.1f}, {hi:+.1f}]" if np.isfinite(lo) else ""
            epochs = sorted(int(r["selected_epoch"]) for r in grouped[head]
                            if size_str(r) == size and r.get("selected_epoch") is not None)
            chosen = ", ".join(map(str, epochs)) or "n/a"
            lines.append(f"| {head} | {convex} | {size} | {mean:+.1f}{ci} | {len(a)} | {chosen} | {verdict} |")
    if trailing:
        lines += ["", "Where a head trails: its number of epochs (listed per run) is chosen on the validation UA of "
                  "one group carved from the training part, which at small training sizes holds a few dozen "
                  "utterances and gives a noisy, often very early choice; its weight decay is fixed by the config. "
                  "The convex reference chooses its regularisation by the mean over several speaker-grouped "
                  "folds of the training part. The gap measures that difference in model selection, not in "
                  "what the head can represent."]
    return ["", *lines]


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """What goes to the CSV: every column but the internal ones, at full precision (p-values can be tiny)."""
    return df.drop(columns=[c for c in df.columns if c.startswith("_")])
