"""Thread settings of a job (device.set_threads) and the LLD extractor's use of them.

The policy: a job given n cores runs n threads in every pool (torch intra-op and inter-op,
numpy's BLAS); the LLD extractor uses them as n workers over spans of frames, each running
single-threaded operations, and leaves the process's settings as it found them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ser_pipeline.features.lld as lld
from ser_pipeline.features.base import get_extractor

SR = 16000
REPO = Path(__file__).resolve().parents[2]


def _signals() -> list[np.ndarray]:
    """Noise bursts, a tone and silence of different lengths: enough frames for several spans."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    return [(0.1 * rng.standard_normal(int(SR * s))).astype(np.float32) for s in (2.3, 0.7, 1.9)] + [
        (0.4 * np.sin(2 * np.pi * 301.7 * t)).astype(np.float32), np.zeros(SR // 3, np.float32)]


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_set_threads_sets_every_pool():
    """In a fresh interpreter (inter-op threads can be set only once per process)."""
    code = (
        "import json, os, numpy\n"
        "from ser_pipeline.device import set_threads\n"
        "out = {'first': set_threads(3)}\n"
        "out['env'] = [os.environ[v] for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS',\n"
        "                                        'OMP_WAIT_POLICY')]\n"
        "out['second'] = set_threads(1)\n"
        "print(json.dumps(out))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("SER_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    first = out["first"]
    assert first["omp_wait_policy"] == "PASSIVE"  # set before torch loaded, so in effect
    assert first["torch_intra_op"] == 3 and first["torch_inter_op"] == 3
    blas = [lib["num_threads"] for lib in first["libraries"] if lib["user_api"] == "blas"]
    assert blas and all(n == 3 for n in blas), first
    assert out["env"] == ["3", "3", "3", "PASSIVE"]
    # A second call changes what can change; inter-op threads stay as first set, and say so.
    second = out["second"]
    assert second["torch_intra_op"] == 1 and second["torch_inter_op"] == 3
    assert all(lib["num_threads"] == 1 for lib in second["libraries"] if lib["user_api"] == "blas")


def test_set_threads_zero_leaves_defaults_and_reads_ser_threads():
    code = (
        "import json, torch\n"
        "from ser_pipeline.device import set_threads\n"
        "before = torch.get_num_threads()\n"
        "print(json.dumps([before, set_threads(0)['torch_intra_op']]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("SER_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    before, after = json.loads(res.stdout.strip().splitlines()[-1])
    assert before == after
    code = code.replace("[before, set_threads(0)['torch_intra_op']]", "[before, set_threads(0)]")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                         env={**env, "SER_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    settings = json.loads(res.stdout.strip().splitlines()[-1])[1]
    assert settings["torch_intra_op"] == 1
    assert settings["omp_wait_policy"] == "ACTIVE"  # a user's choice is kept


def test_lld_two_workers_give_the_output_of_one(restore_threads):
    ex = get_extractor("lld", {})
    ex._workers = lld._WorkerChoice(min_frames=0)
    torch.set_num_threads(1)
    one = ex.extract_batch(_signals(), SR)
    torch.set_num_threads(2)
    two = ex.extract_batch(_signals(), SR)
    for a, b in zip(one, two):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_lld_uses_the_job_thread_count_and_restores_settings(monkeypatch, restore_threads):
    seen = []
    real_pool = lld._worker_pool

    def spy(workers):
        seen.append((workers, torch.get_num_threads(), _blas_threads()))
        return real_pool(workers)

    monkeypatch.setattr(lld, "_worker_pool", spy)
    ex = get_extractor("lld", {})
    ex._workers = lld._WorkerChoice(min_frames=0)  # the first 2-thread batch tries 2 workers
    for n in (1, 2):
        torch.set_num_threads(n)
        blas_before = _blas_threads()
        ex.extract_batch(_signals(), SR)
        assert torch.get_num_threads() == n  # restored after the work
        assert _blas_threads() == blas_before
    # n workers, each op single-threaded (torch and BLAS) while they run
    assert [s[0] for s in seen] == [1, 2]
    assert all(s[1] == 1 and s[2] and all(b == 1 for b in s[2]) for s in seen)


def test_lld_worker_error_reaches_the_caller_and_restores_threads(monkeypatch, restore_threads):
    calls = []
    real = lld._frame_sums

    def failing(*args):
        calls.append(args[1])
        if len(calls) == 2:
            raise RuntimeError("span failed")
        return real(*args)

    monkeypatch.setattr(lld, "_frame_sums", failing)
    torch.set_num_threads(2)
    ex = get_extractor("lld", {})
    ex._workers = lld._WorkerChoice(min_frames=0)
    with pytest.raises(RuntimeError, match="span failed"):
        ex.extract_batch(_signals(), SR)
    assert torch.get_num_threads() == 2


def test_worker_choice_follows_the_faster_option_and_keeps_checking():
    choice = lld._WorkerChoice(explore=4, min_frames=100, margin=0.1)
    assert choice.pick(1, 10_000) == 1 and choice.pick(2, 50) == 1  # one thread / tiny batch
    # both options are timed first, n workers first
    assert choice.pick(2, 1000) == 2
    choice.record(2, 2, 1000, 2.0)  # 2 ms per frame on 2 workers
    assert choice.pick(2, 1000) == 1
    choice.record(1, 2, 1000, 1.0)  # 1 ms per frame on 1
    picks = [choice.pick(2, 1000) for _ in range(8)]
    assert picks == [1, 1, 1, 2, 1, 1, 1, 2]  # the slower one re-timed after 4 batches, then 4 more
    picks = [choice.pick(2, 1000) for _ in range(24)]  # it keeps losing: the interval doubles
    assert [i for i, w in enumerate(picks, start=9) if w == 2] == [16, 32]
    for _ in range(10):  # 2 workers only 5 % faster: within the margin, one worker is kept
        choice.record(2, 2, 1000, 0.95)
    assert [choice.pick(2, 1000) for _ in range(3)] == [1, 1, 1]
    for _ in range(10):  # the load changes: 2 workers become 4x faster
        choice.record(2, 2, 1000, 0.25)
    picks = [choice.pick(2, 1000) for _ in range(4)]
    assert picks.count(2) == 3 and picks.count(1) == 1
    choice.record(1, 2, 50, 100.0)  # tiny batches are not timed
    assert choice.seconds_per_frame[1] == pytest.approx(1e-3)


def test_spans_and_groups_cover_everything_once():
    for n in (1, 127, 128, 129, 1000, 4097):
        for workers in (1, 2, 4):
            spans = lld._spans(n, workers)
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a < b for a, b in spans) and all(s[1] == t[0] for s, t in zip(spans, spans[1:]))
    for sizes in ([5] * 8, [100, 1, 1, 1], [1], [1, 1, 1, 100], list(range(1, 30))):
        groups = lld._groups(sizes, 4)
        assert [i for g in groups for i in g] == list(range(len(sizes)))
        assert all(len(g) > 0 for g in groups)
