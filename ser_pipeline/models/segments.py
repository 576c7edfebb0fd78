"""Fixed-length baseline of Satt et al. 2017, as Ma et al. 2018 (Sec. 3) describe it.

Utterances are cut into 3 s sub-utterances (300 frames at 10 ms), the last one
zero-padded to 3 s; every segment carries the utterance's label in training, and
at test time the utterance posterior is the average of its segments' posteriors.
Ma et al. run this through the same network as the variable-length model
("Fixed-Length" in their Table 1), so only the data handling lives here.

Decided here, where the papers leave it open:

* Segments are consecutive and non-overlapping; the remainder, however short,
  becomes its own zero-padded segment (Ma: "the part of no longer than 3 second is
  padded to 3 second with zero"); an utterance shorter than 3 s gives one padded
  segment. Nothing is dropped, so every frame is seen exactly once.
* The zero padding is kept as data, as in the papers: the fixed-length baseline
  feeds each segment with an all-valid mask, so the network sees the zeros (which,
  after z-normalisation, mean "average spectrum", not silence). The valid length
  of each segment is still returned so a caller can build a real mask for an
  ablation.
* Posteriors are averaged as probabilities (softmax outputs), not logits, since
  the papers say "averaging the posterior probabilities".
* Loss weights (Ma Sec. 4.2) multiply 1/length and 1/class-count and are
  normalised to mean 1 over the set they are computed on (normally the training
  fold), so the loss scale and hence the learning rate stay comparable to an
  unweighted run.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["split_into_segments", "average_segment_posteriors", "length_and_class_weights"]


def split_into_segments(frames, seg_frames: int = 300):
    """[T, D] -> (list of [seg_frames, D] segments, list of valid lengths).

    Accepts a numpy array or a torch tensor and returns segments of the same kind
    and dtype.
    """
    if not isinstance(seg_frames, int) or seg_frames < 1:
        raise ValueError(f"seg_frames must be a positive int, got {seg_frames!r}")
    if frames.ndim != 2:
        raise ValueError(f"frames must be [T, D], got shape {tuple(frames.shape)}")
    T = frames.shape[0]
    if T == 0:
        raise ValueError("cannot segment an utterance with no frames")
    is_torch = torch.is_tensor(frames)
    segments, lengths = [], []
    for start in range(0, T, seg_frames):
        chunk = frames[start:start + seg_frames]
        n = chunk.shape[0]
        if n < seg_frames:
            if is_torch:
                pad = chunk.new_zeros((seg_frames - n, chunk.shape[1]))
                chunk = torch.cat([chunk, pad], dim=0)
            else:
                pad = np.zeros((seg_frames - n, chunk.shape[1]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad], axis=0)
        segments.append(chunk)
        lengths.append(n)
    return segments, lengths


def average_segment_posteriors(posteriors, utt_index, n_utt: int | None = None):
    """Mean of segment posteriors per utterance: [N_seg, C], [N_seg] -> [N_utt, C].

    ``utt_index`` holds each segment's utterance number in 0..N_utt-1 (default
    N_utt = max + 1); every utterance must have at least one segment. Returns the
    same kind (numpy / torch) as ``posteriors``.
    """
    is_torch = torch.is_tensor(posteriors)
    p = posteriors if is_torch else torch.as_tensor(np.asarray(posteriors))
    idx = torch.as_tensor(np.asarray(utt_index) if not torch.is_tensor(utt_index) else utt_index)
    idx = idx.to(device=p.device, dtype=torch.long)
    if p.ndim != 2 or idx.ndim != 1 or idx.shape[0] != p.shape[0]:
        raise ValueError(
            f"posteriors must be [N_seg, C] and utt_index [N_seg]; got {tuple(p.shape)}, {tuple(idx.shape)}"
        )
    if idx.numel() and int(idx.min()) < 0:
        raise ValueError("utt_index must be >= 0")
    if n_utt is None:
        n_utt = int(idx.max()) + 1 if idx.numel() else 0
    if idx.numel() and int(idx.max()) >= n_utt:
        raise ValueError(f"utt_index has values >= n_utt ({n_utt})")
    counts = torch.bincount(idx, minlength=n_utt)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise ValueError(f"utterances without segments: {missing}")
    pf = p.to(torch.float64 if p.dtype == torch.float64 else torch.float32)
    sums = torch.zeros((n_utt, p.shape[1]), dtype=pf.dtype, device=p.device).index_add_(0, idx, pf)
    out = sums / counts.unsqueeze(1).to(pf.dtype)
    return out if is_torch else out.numpy()


def length_and_class_weights(lengths, labels, n_classes: int) -> torch.Tensor:
    """Per-utterance loss weights proportional to 1/length * 1/count(class), mean 1.

    ``lengths`` are valid frame counts (any unit: the normalisation removes it).
    """
    L = torch.as_tensor(np.asarray(lengths) if not torch.is_tensor(lengths) else lengths).to(torch.float64)
    y = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).to(torch.long)
    if L.ndim != 1 or y.ndim != 1 or L.shape != y.shape:
        raise ValueError(f"lengths and labels must be 1-D of equal size; got {tuple(L.shape)}, {tuple(y.shape)}")
    if L.numel() == 0:
        return torch.zeros(0, dtype=torch.float32)
    if bool((L <= 0).any()):
        raise ValueError("lengths must be positive")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    counts = torch.bincount(y, minlength=n_classes).to(torch.float64)
    w = 1.0 / (L * counts[y])
    return (w / w.mean()).to(torch.float32)
