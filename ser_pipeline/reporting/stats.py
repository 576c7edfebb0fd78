"""The statistics behind "does system A really beat system B?": intervals, paired tests, Holm.

Why these choices (every table header repeats them):

- The printed 95% interval is a t-interval over the per-run values (folds x seeds). A run
  is the unit that changes with the speakers held out and with the random seed, which is
  what a reader wants to generalise over. Runs of the same fold share test speakers, so
  the runs are not fully independent; the interval is a description of the spread we
  measured, not a claim about independent replications.
- The bootstrap over test utterances answers a narrower question: how much would the
  mean-over-runs score move if each fold's test part had been a different sample of
  utterances, the trained models held fixed. Utterances are resampled within each fold's
  test part (stratified by fold: no utterance moves between folds), and every run of a
  fold (any model, any seed) sees the same resample, so two systems' bootstrap scores stay
  comparable. It ignores training randomness, so it is usually narrower than the
  t-interval.
- Paired tests (scipy.stats.ttest_rel, scipy.stats.wilcoxon on the differences) use the same
  (fold, seed, training size) runs of both systems: the fold and seed effects cancel in
  the difference. Identical systems (every difference zero) get p = 1 by definition, and a
  difference that is the same non-zero value on every pair gets p = 0 for the t-test (its
  statistic is infinite); scipy would return NaN or warn instead, so both cases are
  decided here, explicitly, and labelled in the output. Differences below EQUAL_TOLERANCE
  are float rounding and count as zero.
- Holm's step-down correction controls the family-wise error over the comparisons of one
  table without assuming they are independent. scipy has no Holm (only
  false_discovery_control), and the method is a few lines, so it is written here and
  tested against hand-computed values.
"""
from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ser_pipeline.errors import SerError

CONFIDENCE = 0.95
ALPHA = 0.05
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0
MIN_T_PAIRS = 2
# Below 6 non-zero differences the smallest two-sided exact Wilcoxon p-value is
# 2 / 2**5 = 0.0625 > 0.05: the test could never reject, so it is not run.
MIN_WILCOXON_NONZERO = 6
# Scores are percentages or fractions; two runs' scores that differ by less than this are
# equal up to float rounding (100 * (x + 0.2) - 100 * x is not exactly 20.0).
EQUAL_TOLERANCE = 1e-9


class IncompleteResultsError(SerError):
    """Result files that cannot be compared as asked (missing pairs, missing keys, mismatched test parts)."""


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of the Student-t interval for the mean; NaN bounds with fewer than 2 values."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan
    sem = float(v.std(ddof=1)) / math.sqrt(v.size)
    if sem == 0.0:
        return mean, mean, mean
    lo, hi = stats.t.interval(confidence, v.size - 1, loc=mean, scale=sem)
    return mean, float(lo), float(hi)


def scores_rows(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """UA and WA of each row of (B, n) label arrays (UA ignores classes absent from a row, as metrics.scores)."""
    y_true = np.atleast_2d(y_true)
    y_pred = np.atleast_2d(y_pred)
    correct = y_true == y_pred
    recalls = np.full((y_true.shape[0], n_classes), np.nan)
    for c in range(n_classes):
        is_c = y_true == c
        support = is_c.sum(axis=1)
        hit = (is_c & correct).sum(axis=1)
        recalls[:, c] = np.where(support > 0, hit / np.maximum(support, 1), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no class at all: NaN, checked by callers
        ua = np.nanmean(recalls, axis=1)
    wa = correct.mean(axis=1)
    return ua, wa


def fold_resample(fold: str, n: int, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(n_boot, n) utterance indices for one fold's test part; the same for every run of that fold."""
    rng = np.random.default_rng([seed, zlib.crc32(fold.encode())])
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_interval(folds: dict[str, list[tuple[np.ndarray, np.ndarray]]], n_classes: int,
                       n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                       confidence: float = CONFIDENCE) -> dict[str, tuple[float, float]]:
    """Percentile interval of the mean-over-runs UA and WA.

    ``folds`` maps a fold name to the (y_true, y_pred) arrays of every run of that fold, all
    in the same utterance order (the caller checks). Returns {"UA": (lo, hi), "WA": (lo, hi)}.
    """
    total = {"UA": np.zeros(n_boot), "WA": np.zeros(n_boot)}
    count = 0
    for fold in sorted(folds):
        runs = folds[fold]
        n = len(runs[0][0])
        if n == 0:
            raise IncompleteResultsError(f"fold {fold}: empty test part, nothing to resample")
        idx = fold_resample(fold, n, n_boot, seed)
        for y_true, y_pred in runs:
            ua, wa = scores_rows(np.asarray(y_true)[idx], np.asarray(y_pred)[idx], n_classes)
            total["UA"] += ua
            total["WA"] += wa
            count += 1
    tail = 100 * (1 - confidence) / 2
    out = {}
    for m, t in total.items():
        mean = t / count
        if not np.all(np.isfinite(mean)):
            raise IncompleteResultsError(f"bootstrap {m}: a resample had no scorable utterance")
        lo, hi = np.percentile(mean, [tail, 100 - tail])
        out[m] = (float(lo), float(hi))
    return out


@dataclass
class PairedResult:
    n_pairs: int
    mean_diff: float            # b - a, in the units given
    t_stat: float
    t_p: float                  # two-sided; NaN when not run
    w_stat: float
    w_p: float                  # two-sided; NaN when not run
    n_nonzero: int
    note: str                   # why a test was not run, or how a degenerate case was decided


def paired_tests(a, b) -> PairedResult:
    """Two-sided paired t-test and Wilcoxon signed-rank test of b against a (same pairing order)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_tests: {a.shape} and {b.shape} values")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired_tests: non-finite value among the pairs")
    d = b - a
    d = np.where(np.abs(d) <= EQUAL_TOLERANCE, 0.0, d)
    n = int(d.size)
    nonzero = int(np.count_nonzero(d))
    mean_diff = float(d.mean()) if n else math.nan
    nan = math.nan
    if n == 0:
        return PairedResult(0, nan, nan, nan, nan, nan, 0, "no pairs")
    if nonzero == 0:
        return PairedResult(n, 0.0, 0.0, 1.0, 0.0, 1.0, 0, "identical on every pair: p = 1 by definition")
    notes = []
    if n < MIN_T_PAIRS:
        t_stat, t_p = nan, nan
        notes.append(f"t-test needs {MIN_T_PAIRS}+ pairs")
    elif np.ptp(d) <= EQUAL_TOLERANCE:
        t_stat, t_p = math.copysign(math.inf, d[0]), 0.0
        notes.append("the same difference on every pair: t infinite, p = 0")
    else:
        res = stats.ttest_rel(b, a)
        t_stat, t_p = float(res.statistic), float(res.pvalue)
    if nonzero < MIN_WILCOXON_NONZERO:
        w_stat, w_p = nan, nan
        notes.append(f"Wilcoxon needs {MIN_WILCOXON_NONZERO}+ non-zero differences, has {nonzero}")
    else:
        res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        w_stat, w_p = float(res.statistic), float(res.pvalue)
    return PairedResult(n, mean_diff, t_stat, t_p, w_stat, w_p, nonzero, "; ".join(notes))


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries (tests not run) stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def per_speaker_ua(y_true, y_pred, speakers, n_classes: int) -> dict[str, float]:
    """UA of each speaker's utterances (classes the speaker never shows do not count)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    speakers = np.asarray(speakers, dtype=object)
    out = {}
    for spk in sorted(set(speakers.tolist())):
        sel = speakers == spk
        ua, _ = scores_rows(y_true[sel], y_pred[sel], n_classes)
        out[str(spk)] = float(ua[0])
    return out


def format_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    if p == 0.0:
        return "0"
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"
