"""Classical baselines on one pooled vector per utterance: a linear SVM and logistic regression.

Triantafyllopoulos et al. compare their networks with SVMs on the 88 eGeMAPS functionals,
normalised over the training set (SVM) or per speaker (SVM-NORM, a training option of the
core), "C chosen on the validation part". A multinomial logistic regression on the pooled
frames a Boigne head sees is the convex reference those heads should reach when trained to
convergence. Both are first-class models: same job, same result file, same tables.

Decided here, where the papers are silent:

* The SVM is linear (liblinear's ``LinearSVC``, one-vs-rest, squared hinge), as in the
  Interspeech challenge baselines on eGeMAPS; C from a log grid (``C_grid``).
* Class weights: ``balanced`` by default (inverse class frequency, as the networks' loss),
  so the SVM is not tuned for WA on an imbalanced corpus while the tables report UA.
* C is chosen by UA on the validation part; without one (leave-one-session-out), by
  speaker-grouped cross-validation inside the training part. Never on the test part. The
  final model is refitted on the training part with the chosen C.
* Utterance vectors: the mean of the frames (``pooling: mean``) or mean and max
  (``mean_max``), of whatever the core hands over (eGeMAPS is already one vector).
* The SVM's "probabilities" are a softmax of its decision values: scores for ranking and
  for the predict command, not calibrated probabilities (a Platt fit would need another
  cross-validation); the result file says so.
"""
from __future__ import annotations

import numpy as np
import torch

from ser_pipeline.models import ClassicalModel, register_model

DEFAULT_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]


def pool(frames: list[np.ndarray], how: str) -> np.ndarray:
    """One vector per utterance from its frames."""
    if how == "mean":
        return np.stack([a.mean(axis=0) for a in frames]).astype(np.float64)
    return np.stack([np.concatenate([a.mean(axis=0), a.max(axis=0)]) for a in frames]).astype(np.float64)


def unweighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    recalls = [np.mean(y_pred[y_true == c] == c) for c in range(n_classes) if np.any(y_true == c)]
    return float(np.mean(recalls))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _LinearClassical(ClassicalModel):
    """Shared fitting: C on validation UA (or grouped CV), refit, linear scores as tensors."""

    streams = ("audio",)
    probability_note = ""

    @classmethod
    def default_hparams(cls) -> dict:
        return {"C_grid": list(DEFAULT_GRID), "pooling": "mean", "class_weight": "balanced",
                "max_iter": 5000, "cv_folds": 5}

    def __init__(self, input_dims, n_classes, hparams=None):
        super().__init__(input_dims, n_classes, hparams)
        hp = self.hparams
        if hp["pooling"] not in ("mean", "mean_max"):
            raise self._bad("pooling", "must be 'mean' or 'mean_max'")
        if hp["class_weight"] not in ("balanced", "none"):
            raise self._bad("class_weight", "must be 'balanced' or 'none'")
        if not hp["C_grid"] or not all(isinstance(c, (int, float)) and c > 0 for c in hp["C_grid"]):
            raise self._bad("C_grid", "must be a non-empty list of positive numbers")
        self.coef = None
        self.intercept = None

    def _estimator(self, C: float):
        raise NotImplementedError

    def _linear(self, est) -> tuple[np.ndarray, np.ndarray]:
        coef, intercept = np.asarray(est.coef_, dtype=np.float64), np.asarray(est.intercept_, dtype=np.float64)
        if coef.shape[0] == 1 and self.n_classes == 2:  # binary: one decision function
            coef, intercept = np.vstack([-coef, coef]) / 2, np.concatenate([-intercept, intercept]) / 2
        return coef, intercept

    def _fit_scores(self, C, x, y, vx, vy) -> float:
        if len(np.unique(y)) < 2:
            return float("nan")  # a cross-validation split too small to hold two classes
        est = self._estimator(C).fit(x, y)
        return unweighted_accuracy(vy, est.predict(vx), self.n_classes)

    def fit(self, train_x, train_y, val_x=None, val_y=None, groups=None) -> dict:
        x, y = self.vectors(train_x), np.asarray(train_y)
        grid = [float(c) for c in self.hparams["C_grid"]]
        if val_x is not None and len(val_x):
            vx, vy = self.vectors(val_x), np.asarray(val_y)
            found = [self._fit_scores(C, x, y, vx, vy) for C in grid]
            selection = "C with the best UA on the validation part"
        else:
            from sklearn.model_selection import GroupKFold

            groups = np.asarray(groups)
            k = min(int(self.hparams["cv_folds"]), len(set(groups)))
            if k < 2:
                raise ValueError("choosing C without a validation part needs at least 2 training speakers")
            splits = list(GroupKFold(n_splits=k).split(x, y, groups))
            per_split = np.array([[self._fit_scores(C, x[a], y[a], x[b], y[b]) for a, b in splits] for C in grid])
            usable = ~np.isnan(per_split).any(axis=0)
            selection = (f"C with the best mean UA over {int(usable.sum())} speaker-grouped folds of the training "
                         f"part (no validation part)")
            if not usable.any():
                found = [float("nan")] * len(grid)
                best = 1.0 if 1.0 in grid else grid[len(grid) // 2]
                self.coef, self.intercept = self._linear(self._estimator(best).fit(x, y))
                return {"chosen": {"C": best}, "scores": [{"C": c, "UA": None} for c in grid],
                        "selection": f"C = {best:g} unchosen: every speaker-grouped split of the training part "
                                     f"lacked a class (too little training data to cross-validate)",
                        "probabilities": self.probability_note}
            found = [float(v) for v in per_split[:, usable].mean(axis=1)]
        best = grid[int(np.argmax(found))]  # first of ties: the strongest regularisation
        self.coef, self.intercept = self._linear(self._estimator(best).fit(x, y))
        return {"chosen": {"C": best}, "scores": [{"C": c, "UA": round(s, 5)} for c, s in zip(grid, found)],
                "selection": selection, "probabilities": self.probability_note}

    def vectors(self, frames) -> np.ndarray:
        return frames if isinstance(frames, np.ndarray) else pool(frames, self.hparams["pooling"])

    def decision(self, frames) -> np.ndarray:
        return self.vectors(frames) @ self.coef.T + self.intercept

    def predict_proba(self, frames) -> np.ndarray:
        return _softmax(self.decision(frames)).astype(np.float32)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"coef": torch.from_numpy(self.coef), "intercept": torch.from_numpy(self.intercept)}

    def load_state_tensors(self, state) -> None:
        self.coef, self.intercept = state["coef"].numpy(), state["intercept"].numpy()


@register_model("svm")
class LinearSVM(_LinearClassical):
    """Linear SVM (Triantafyllopoulos et al.'s SVM / SVM-NORM baselines on eGeMAPS)."""

    probability_note = "softmax of the SVM decision values (scores, not calibrated probabilities)"

    def _estimator(self, C: float):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=C, class_weight=None if self.hparams["class_weight"] == "none" else "balanced",
                         max_iter=int(self.hparams["max_iter"]), dual="auto")


@register_model("logreg")
class LogisticRegressionModel(_LinearClassical):
    """Multinomial logistic regression: the convex reference for the linear pooling heads."""

    probability_note = "multinomial logistic regression probabilities"

    @classmethod
    def default_hparams(cls) -> dict:
        return {**super().default_hparams(), "class_weight": "none"}

    def _estimator(self, C: float):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, class_weight=None if self.hparams["class_weight"] == "none" else "balanced",
                                  max_iter=int(self.hparams["max_iter"]))
