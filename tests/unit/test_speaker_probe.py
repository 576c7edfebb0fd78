"""Speaker probe and the t-SNE figure of Li et al. 2020 (reporting.speaker_probe)."""
import numpy as np
import pytest

from ser_pipeline.reporting.speaker_probe import (
    EmbeddingFileError,
    load_embeddings,
    speaker_probe,
    tsne_figure,
)

EMOTIONS = np.array(["ang", "hap", "neu", "sad"])


def constructed(n_a=36, n_b=24, dim=16, speaker_shift=0.0, seed=0):
    """Two speakers (unequal sizes: chance 0.6), emotion clusters, optional speaker offset."""
    rng = np.random.default_rng(seed)
    n = n_a + n_b
    spk = np.array(["Ses01F"] * n_a + ["Ses01M"] * n_b)
    lab = EMOTIONS[np.arange(n) % 4]
    emo_centres = rng.normal(size=(4, dim)) * 3
    x = emo_centres[np.arange(n) % 4] + rng.normal(size=(n, dim))
    x[spk == "Ses01M"] += speaker_shift
    return x, spk, lab


def write_npz(path, x, spk, lab):
    np.savez(path, embeddings=x.astype(np.float32), utt_id=np.array([f"u{i:03d}" for i in range(len(x))]),
             speaker=spk, label=lab)
    return path


def test_probe_separable_speakers_near_one():
    x, spk, _ = constructed(speaker_shift=4.0)
    r = speaker_probe(x, spk)
    assert r["accuracy"] > 0.97
    assert r["chance"] == pytest.approx(0.6)
    assert r["n_splits"] == 5 and r["n"] == 60 and r["n_speakers"] == 2


def test_probe_speaker_independent_embeddings_near_chance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    spk = np.array(["a"] * 120 + ["b"] * 80)
    rng.shuffle(spk)
    r = speaker_probe(x, spk, seed=0)
    assert r["chance"] == pytest.approx(0.6)
    assert abs(r["accuracy"] - r["chance"]) < 0.1
    # emotion structure alone (same for both speakers) gives nothing away either
    x2, spk2, _ = constructed(n_a=120, n_b=80, speaker_shift=0.0, seed=2)
    assert speaker_probe(x2, spk2)["accuracy"] < 0.7


def test_probe_reduces_folds_for_small_speakers_and_rejects_bad_input():
    x = np.random.default_rng(0).normal(size=(9, 4))
    spk = np.array(["a"] * 6 + ["b"] * 3)
    assert speaker_probe(x, spk)["n_splits"] == 3
    with pytest.raises(ValueError, match="fewer than 2"):
        speaker_probe(x[:7], spk[:7])
    with pytest.raises(ValueError, match="at least 2 speakers"):
        speaker_probe(x, np.array(["a"] * 9))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        speaker_probe(bad, spk)


def test_tsne_figure_writes_png_with_probe_numbers(tmp_path):
    x_mt, spk, lab = constructed(speaker_shift=4.0, seed=3)
    x_me, _, _ = constructed(speaker_shift=0.0, seed=3)
    runs = {"Multi-task": write_npz(tmp_path / "mt.npz", x_mt, spk, lab),
            "MEnAN": write_npz(tmp_path / "menan.npz", x_me, spk, lab)}
    out = tmp_path / "fig" / "li_fig2.png"
    probes = tsne_figure(runs, out, seed=0)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(probes) == ["Multi-task", "MEnAN"]
    assert probes["Multi-task"]["accuracy"] > 0.95 > probes["MEnAN"]["accuracy"]
    assert not list(out.parent.glob(".*tmp*"))  # nothing half-written left behind


def test_tsne_figure_small_n(tmp_path):
    x, spk, lab = constructed(n_a=4, n_b=4, dim=6, seed=4)
    out = tmp_path / "small.png"
    tsne_figure({"EC only": write_npz(tmp_path / "e.npz", x, spk, lab)}, out)
    assert out.stat().st_size > 0


def test_bad_embedding_files(tmp_path):
    with pytest.raises(EmbeddingFileError, match="not found"):
        load_embeddings(tmp_path / "nope.npz")
    np.savez(tmp_path / "partial.npz", embeddings=np.zeros((3, 2)), speaker=np.array(["a", "b", "a"]))
    with pytest.raises(EmbeddingFileError, match="missing"):
        load_embeddings(tmp_path / "partial.npz")
    np.savez(tmp_path / "short.npz", embeddings=np.zeros((3, 2)), utt_id=np.array(["1", "2"]),
             speaker=np.array(["a", "b", "a"]), label=np.array(["x", "y", "x"]))
    with pytest.raises(EmbeddingFileError, match="utt_id"):
        load_embeddings(tmp_path / "short.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(EmbeddingFileError, match="cannot read"):
        load_embeddings(tmp_path / "junk.npz")
    with pytest.raises(EmbeddingFileError, match="at least 5"):
        x, spk, lab = constructed(n_a=2, n_b=2)
        tsne_figure({"x": write_npz(tmp_path / "tiny.npz", x, spk, lab)}, tmp_path / "t.png")
