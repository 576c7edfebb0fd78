"""How much speaker identity an embedding still carries: a linear probe and Li et al.'s Fig. 2.

Li et al. (2020) show speaker removal only as a t-SNE picture of enc(x) for the two unseen
speakers of a fold (Fig. 2: multi-task vs MEnAN, coloured by emotion and by speaker).
A picture is not a measurement, so every panel here carries a number as well: the
cross-validated accuracy of a linear classifier that tries to tell those speakers apart
from the embeddings, next to the chance level (the majority speaker's share). A probe near
chance means no *linearly* decodable speaker information is left; a nonlinear probe could
still find some, so this is a lower bound on what remains, not proof of removal.

Choices: the probe is logistic regression (L2, C = 1, lbfgs) on standardised embeddings,
the scaler fitted inside each training fold; stratified k-fold (k = 5, fewer when the
smallest speaker has fewer utterances) shuffled with a fixed seed. t-SNE runs on the raw
embeddings (as the paper plots enc(x)), PCA initialisation, fixed seed, perplexity
min(30, (N - 1) / 3) so that small folds stay valid; exact gradients up to 500 points
(faster there than Barnes-Hut, and a demo fold is that small), Barnes-Hut above (an IEMOCAP
session's two speakers are about 1,100 utterances).

Input files are the ``embeddings`` .npz files the training core writes beside each result
JSON (docs/design.md, "Result files"): arrays ``embeddings`` [N, E], ``utt_id``, ``speaker``
and ``label`` [N], the validation + test parts of a fold, i.e. its unseen speakers.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ser_pipeline.atomic import atomic_path
from ser_pipeline.errors import SerError

__all__ = ["speaker_probe", "load_embeddings", "tsne_figure", "EmbeddingFileError"]

NPZ_KEYS = ("embeddings", "utt_id", "speaker", "label")
EXACT_TSNE_MAX = 500  # exact t-SNE up to here (faster for small N), Barnes-Hut above


class EmbeddingFileError(SerError, ValueError):
    """An embeddings file that is missing, unreadable or inconsistent."""


def speaker_probe(embeddings, speakers, seed: int = 0, n_splits: int = 5) -> dict:
    """Cross-validated accuracy of a linear speaker classifier on ``embeddings``.

    Returns {"accuracy", "accuracy_std" (across folds), "chance" (majority share),
    "n_splits", "n", "n_speakers", "probe" (one line saying what was fitted)}.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(speakers).astype(str)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"embeddings must be [N, E] with one speaker per row; got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"embeddings hold {int((~np.isfinite(x)).sum())} non-finite value(s)")
    names, counts = np.unique(y, return_counts=True)
    if len(names) < 2:
        raise ValueError(f"a speaker probe needs at least 2 speakers, got {list(names)}")
    k = int(min(n_splits, counts.min()))
    if k < 2:
        small = [str(n) for n, c in zip(names, counts) if c < 2]
        raise ValueError(f"speaker(s) {small} have fewer than 2 utterances: cannot cross-validate a probe")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = cross_val_score(probe, x, y, cv=cv, scoring="accuracy")
    return {
        "accuracy": float(scores.mean()),
        "accuracy_std": float(scores.std()),
        "chance": float(counts.max() / counts.sum()),
        "n_splits": k,
        "n": int(len(y)),
        "n_speakers": int(len(names)),
        "probe": f"standardised logistic regression (C=1), stratified {k}-fold, seed {seed}",
    }


def load_embeddings(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The four arrays of an embeddings .npz, checked for shape and finiteness."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingFileError(f"{path}: embeddings file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise EmbeddingFileError(f"{path}: missing array(s) {missing} (has {sorted(z.files)})")
            out = {k: z[k] for k in NPZ_KEYS}
    except EmbeddingFileError:
        raise
    except Exception as e:  # zip / pickle / format errors
        raise EmbeddingFileError(f"{path}: cannot read as an embeddings .npz ({e})") from e
    emb = out["embeddings"]
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise EmbeddingFileError(f"{path}: 'embeddings' must be a non-empty [N, E] array, got shape {emb.shape}")
    for k in ("utt_id", "speaker", "label"):
        if out[k].shape != (emb.shape[0],):
            raise EmbeddingFileError(f"{path}: '{k}' has shape {out[k].shape}, expected ({emb.shape[0]},)")
        out[k] = out[k].astype(str)
    if not np.isfinite(emb).all():
        raise EmbeddingFileError(f"{path}: 'embeddings' hold non-finite values")
    return out


def _perplexity(n: int) -> float:
    return float(min(30.0, max(1.0, (n - 1) / 3.0)))


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    method = "exact" if len(x) <= EXACT_TSNE_MAX else "barnes_hut"
    return TSNE(n_components=2, perplexity=_perplexity(len(x)), init="pca", learning_rate="auto",
                method=method, random_state=seed).fit_transform(x.astype(np.float64))


def tsne_figure(runs: dict[str, str | os.PathLike], out_png: str | os.PathLike, seed: int = 0) -> dict:
    """Fig. 2 of Li et al.: one row per system, t-SNE of its embeddings coloured by emotion
    (left) and by speaker (right), every panel titled with the speaker-probe accuracy.

    ``runs`` maps a system name (row title) to its embeddings .npz, in row order. Returns
    {system: probe result} (see :func:`speaker_probe`) so a caller can tabulate the numbers.
    """
    if not runs:
        raise ValueError("tsne_figure needs at least one system")
    data = {name: load_embeddings(p) for name, p in runs.items()}
    for name, d in data.items():
        if len(d["embeddings"]) < 5:
            raise EmbeddingFileError(f"{runs[name]}: {len(d['embeddings'])} utterance(s); t-SNE needs at least 5")
    probes = {name: speaker_probe(d["embeddings"], d["speaker"], seed=seed) for name, d in data.items()}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emotions = sorted({e for d in data.values() for e in d["label"]})
    speakers = sorted({s for d in data.values() for s in d["speaker"]})
    emo_colours = {e: plt.cm.tab10(i % 10) for i, e in enumerate(emotions)}
    spk_colours = {s: plt.cm.Dark2(i % 8) for i, s in enumerate(speakers)}

    fig, axes = plt.subplots(len(data), 2, figsize=(9.0, 4.0 * len(data)), squeeze=False)
    for row, (name, d) in zip(axes, data.items()):
        xy = _tsne(d["embeddings"], seed)
        pr = probes[name]
        probe_txt = f"speaker probe {100 * pr['accuracy']:.0f}% (chance {100 * pr['chance']:.0f}%)"
        for ax, key, colours, what in ((row[0], "label", emo_colours, "emotion"),
                                       (row[1], "speaker", spk_colours, "speaker")):
            for value, colour in colours.items():
                sel = d[key] == value
                if sel.any():
                    ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=colour, label=value, alpha=0.8)
            ax.set_title(f"{name}: by {what}\n{probe_txt}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.suptitle(f"t-SNE of the encoder output, unseen speakers ({', '.join(speakers)})", fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return probes
