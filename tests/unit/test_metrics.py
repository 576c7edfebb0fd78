import numpy as np

from ser_pipeline.training.metrics import scores


def test_ua_is_mean_recall_and_wa_is_accuracy():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    p = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    s = scores(y, p, ["a", "b"])
    assert s["WA"] == 7 / 8
    assert s["UA"] == (1.0 + 0.5) / 2
    assert s["confusion"] == [[6, 0], [1, 1]]


def test_absent_class_is_left_out_of_ua():
    s = scores([0, 0], [0, 1], ["a", "b", "c"])
    assert s["UA"] == 0.5 and s["recall"]["c"] is None
