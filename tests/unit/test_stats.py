"""The statistics give the known answer on inputs built so the answer is known."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from ser_pipeline.reporting import stats
from ser_pipeline.training.metrics import scores


def test_t_interval_is_the_textbook_formula():
    v = np.array([50.0, 52.0, 55.0, 49.0, 54.0])
    mean, lo, hi = stats.t_interval(v)
    half = sps.t.ppf(0.975, 4) * v.std(ddof=1) / math.sqrt(5)
    assert mean == pytest.approx(52.0)
    assert (lo, hi) == pytest.approx((52.0 - half, 52.0 + half))


def test_t_interval_with_one_value_has_no_bounds_and_constant_values_collapse():
    assert math.isnan(stats.t_interval([0.5])[1])
    assert stats.t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)


def test_t_interval_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    hits = 0
    trials = 600
    for _ in range(trials):
        _, lo, hi = stats.t_interval(rng.normal(60.0, 4.0, size=8))
        hits += lo <= 60.0 <= hi
    # binomial sd at p = 0.95, n = 600 is 0.009: 0.92..0.98 is more than 3 sd either side
    assert 0.92 <= hits / trials <= 0.98


def test_identical_systems_get_p_one_explicitly():
    a = np.array([50.0, 60.0, 55.0, 58.0, 61.0, 49.0, 52.0])
    res = stats.paired_tests(a, a.copy())
    assert res.t_p == 1.0 and res.w_p == 1.0 and res.mean_diff == 0.0
    assert "identical" in res.note


def test_a_constant_shift_on_every_pair_gives_a_tiny_p():
    rng = np.random.default_rng(0)
    a = rng.uniform(40, 70, size=10)
    exact = stats.paired_tests(a, a + 2.0)
    assert exact.t_p == 0.0 and exact.t_stat == math.inf and "same difference" in exact.note
    assert exact.w_p == pytest.approx(2 / 2 ** 10)  # exact two-sided Wilcoxon, all 10 signs positive
    noisy = stats.paired_tests(a, a + 2.0 + rng.normal(0, 0.1, size=10))
    assert noisy.t_p < 1e-8 and noisy.t_stat > 0 and noisy.mean_diff == pytest.approx(2.0, abs=0.1)


def test_paired_tests_call_scipy_with_b_minus_a():
    rng = np.random.default_rng(3)
    a, b = rng.normal(50, 5, 12), rng.normal(49, 5, 12)
    res = stats.paired_tests(a, b)
    assert res.t_p == pytest.approx(sps.ttest_rel(b, a).pvalue)
    assert res.t_stat == pytest.approx(sps.ttest_rel(b, a).statistic)
    assert res.w_p == pytest.approx(sps.wilcoxon(b - a).pvalue)
    assert res.mean_diff == pytest.approx(float(np.mean(b - a)))


def test_too_few_pairs_are_reported_not_tested():
    res = stats.paired_tests([50.0, 51.0, 49.0], [52.0, 54.0, 50.0])
    assert math.isnan(res.w_p) and np.isfinite(res.t_p) and "Wilcoxon needs 6+" in res.note
    one = stats.paired_tests([50.0], [52.0])
    assert math.isnan(one.t_p) and "t-test needs 2+" in one.note


def test_paired_tests_refuse_non_finite_values():
    with pytest.raises(ValueError):
        stats.paired_tests([1.0, float("nan")], [1.0, 2.0])


def test_holm_matches_hand_computed_values_and_skips_nan():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06)
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adj = stats.holm([0.02, float("nan"), 0.5])
    assert adj[0] == pytest.approx(0.04) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.5)
    assert stats.holm([0.9, 0.8]).max() <= 1.0


def test_scores_rows_agrees_with_the_metrics_module():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 4, size=(3, 50))
    y_pred = np.where(rng.random((3, 50)) < 0.6, y_true, rng.integers(0, 4, size=(3, 50)))
    ua, wa = stats.scores_rows(y_true, y_pred, 4)
    for i in range(3):
        s = scores(y_true[i], y_pred[i], ["a", "b", "c", "d"])
        assert ua[i] == pytest.approx(s["UA"]) and wa[i] == pytest.approx(s["WA"])


def _simulated_run(rng, recall, n_per_class):
    y_true = np.repeat(np.arange(len(recall)), n_per_class)
    hit = rng.random(y_true.size) < np.repeat(recall, n_per_class)
    y_pred = np.where(hit, y_true, (y_true + 1) % len(recall))
    return y_true, y_pred


def test_bootstrap_interval_covers_the_true_ua_at_about_the_nominal_rate():
    recall = np.array([0.8, 0.5, 0.6, 0.7])  # true UA 0.65
    hits, trials = 0, 150
    for t in range(trials):
        rng = np.random.default_rng(100 + t)
        folds = {f"f0{k}": [_simulated_run(rng, recall, 30)] for k in (1, 2)}
        lo, hi = stats.bootstrap_interval(folds, 4, n_boot=300, seed=t)["UA"]
        hits += lo <= 0.65 <= hi
    # the percentile bootstrap runs a little narrow on small samples; 0.86..0.99 rules out a broken one
    assert 0.86 <= hits / trials <= 0.99


def test_bootstrap_resamples_each_fold_the_same_way_for_every_run():
    rng = np.random.default_rng(0)
    run = _simulated_run(rng, np.array([0.7, 0.6, 0.5, 0.8]), 20)
    one = stats.bootstrap_interval({"f01": [run]}, 4, n_boot=200)
    two = stats.bootstrap_interval({"f01": [run, run]}, 4, n_boot=200)
    assert one == two  # a shared resample: two copies of a run average to the run itself
    assert np.array_equal(stats.fold_resample("f01", 40, 5), stats.fold_resample("f01", 40, 5))
    assert not np.array_equal(stats.fold_resample("f01", 40, 5), stats.fold_resample("f02", 40, 5))


def test_per_speaker_ua_ignores_classes_a_speaker_never_shows():
    y_true = [0, 0, 1, 1, 0, 2]
    y_pred = [0, 1, 1, 1, 0, 0]
    spk = ["A", "A", "A", "A", "B", "B"]
    out = stats.per_speaker_ua(y_true, y_pred, spk, 3)
    assert out["A"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["B"] == pytest.approx((1.0 + 0.0) / 2)


def test_format_p():
    assert stats.format_p(float("nan")) == "n/a"
    assert stats.format_p(0.0) == "0"
    assert stats.format_p(0.0123) == "0.012"
    assert stats.format_p(0.5) == "0.50"
    assert stats.format_p(3e-6) == "3.0e-06"
