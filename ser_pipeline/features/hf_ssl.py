"""Hidden states of self-supervised speech transformers (wav2vec 2.0, HuBERT, WavLM) via transformers.

Two properties matter more than speed here, because cached features are reused across many
experiments: an utterance's features must not depend on which utterances share its batch, and
long input must be handled without silently changing the frame grid. Both are handled below.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ser_pipeline.errors import ConfigError, SerError
from ser_pipeline.features.base import Extractor, as_float32_frames, register
from ser_pipeline.features.checksum import dir_checksum

SAMPLE_RATE = 16000
_KNOWN = {"model", "revision", "layer", "layer_reduce", "dtype", "do_normalize", "max_chunk_seconds",
          "chunk_context_seconds", "max_batch_seconds", "seed", "random_init_size"}
_RANDOM_ONLY = ("seed", "random_init_size")
RANDOM_PREFIX = "random-init:"
RANDOM_FAMILIES = ("wav2vec2", "hubert", "wavlm")
RANDOM_SIZES = ("small", "base")

# A third of the base models' width and depth (half their conv channels): small enough for the offline
# demo on two CPU cores, yet the same conv feature encoder (kernels, strides, group norm of the
# base models), so frame grid, receptive field and the batching rules are exactly the real ones.
SMALL_ARCH: dict = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "conv_dim": (256,) * 7,
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
}


def _family_classes(family: str):
    import transformers as tf
    names = {"wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
             "hubert": ("HubertConfig", "HubertModel"),
             "wavlm": ("WavLMConfig", "WavLMModel")}[family]
    cfg_cls, model_cls = (getattr(tf, n, None) for n in names)
    if cfg_cls is None or model_cls is None:
        raise ConfigError(f"hf_ssl: transformers {tf.__version__} has no {family} model")
    return cfg_cls, model_cls


def build_random_model(family: str, size: str, seed: int):
    """A randomly initialised model of ``family``, identical for identical (family, size, seed).

    The weights come from transformers' own initialisation, run under a forked RNG seeded with
    ``seed`` so that building one leaves the caller's global random state untouched.
    """
    cfg_cls, model_cls = _family_classes(family)
    cfg = cfg_cls(**SMALL_ARCH) if size == "small" else cfg_cls()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(cfg)
    return model


def parse_layers(value, n_hidden: int, who: str) -> list[int]:
    """``layer`` as int or list of ints, Python-style negative indices allowed, into hidden_states."""
    layers = value if isinstance(value, (list, tuple)) else [value]
    if not layers:
        raise ConfigError(f"{who}: layer list is empty")
    out = []
    for v in layers:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"{who}: layer must be an int or a list of ints, got {v!r}")
        if not -n_hidden <= v < n_hidden:
            raise ConfigError(f"{who}: layer {v} out of range; the model has {n_hidden} hidden states "
                              f"(0 = input to the first transformer layer, {n_hidden - 1} = last layer)")
        out.append(int(v) % n_hidden)
    return out


def reduce_layers(hidden_states, layers: list[int], how: str) -> torch.Tensor:
    picked = [hidden_states[i] for i in layers]
    if len(picked) == 1:
        return picked[0]
    if how == "mean":
        return torch.stack(picked, 0).float().mean(0)
    return torch.cat(picked, -1)


def is_local(ref: str) -> bool:
    return os.path.isdir(os.path.expanduser(str(ref)))


def hub_revision(ref: str, revision: str | None) -> str | None:
    """The commit a hub id resolved to in the local cache (the id alone does not pin weights)."""
    try:
        from transformers.utils.hub import cached_file, extract_commit_hash
        resolved = cached_file(ref, "config.json", revision=revision)
        return extract_commit_hash(resolved, None) or revision
    except Exception:
        return revision


def model_provenance(ref: str, revision: str | None) -> dict:
    if is_local(ref):
        return {"model_checksum": "sha256:" + dir_checksum(os.path.expanduser(ref))}
    return {"model_revision": hub_revision(ref, revision) or "unknown"}


def _read_preprocessor(ref: str, revision: str | None) -> dict | None:
    if is_local(ref):
        p = Path(os.path.expanduser(ref)) / "preprocessor_config.json"
        return json.loads(p.read_text()) if p.is_file() else None
    try:
        from transformers.utils.hub import cached_file
        p = cached_file(ref, "preprocessor_config.json", revision=revision,
                        _raise_exceptions_for_missing_entries=False)
    except Exception:
        p = None
    return json.loads(Path(p).read_text()) if p else None


def _conv_out_len(n: int, kernels, strides) -> int:
    for k, s in zip(kernels, strides):
        n = (n - k) // s + 1 if n >= k else 0
    return n


@register("hf_ssl")
class HFSelfSupervised(Extractor):
    """Frame-level hidden states of a wav2vec 2.0 / HuBERT / WavLM checkpoint (20 ms frames).

    Config: ``model`` (hub id, local folder, or ``random-init:<family>`` with family wav2vec2 |
    hubert | wavlm), ``revision``, ``layer`` (int or list; indexes
    transformers' ``hidden_states``: 0 is the input to the first transformer layer), ``layer_reduce``
    (mean | concat for lists), ``dtype`` (float32 | float16; float16 only on CUDA, via autocast so
    that norms and softmax stay in float32), ``do_normalize`` (used only when the model has no
    preprocessor_config.json; random-init models default to false), ``max_chunk_seconds`` (null =
    whole utterances), ``chunk_context_seconds`` (default 2.0), ``max_batch_seconds`` (padded audio
    per pass, default 80); for random-init models only: ``seed`` (default 0) and
    ``random_init_size`` (small: 256 hidden, 4 layers, for CPU demos; base: the family's default
    config, i.e. base-model shapes and cost).

    Random-init models exist because no weights can be downloaded on the build machines: they
    let the whole pipeline run, and let throughput be measured, without pretending to be a
    pretrained model; ``info()`` marks them ``random_init: true`` so reports can say so.

    Batching: models with ``feat_extract_norm == "group"`` (wav2vec2-base, HuBERT-base) normalise
    each conv channel over the whole input, so padding would leak into every frame; they are run
    only with partners of exactly the same length. "layer" models get padding and an attention
    mask, which transformers zeroes out before the positional convolution.

    Chunking: an utterance longer than ``max_chunk_seconds`` is cut into windows that start on
    the model's hop (320 samples), each carrying ``chunk_context_seconds`` of context on both
    sides; from each window only the central frames are kept, so the frame count and grid equal
    those of an unchunked run and each kept frame saw at least that much context. (Group-norm
    models still see per-window statistics.)
    """

    input_kind = "audio"
    frame_rate = 50.0
    supports_gpu = True
    threaded = True

    def __init__(self, config: dict, device: str = "cpu"):
        super().__init__(config, device)
        from transformers import AutoModel

        unknown = sorted(set(self.config) - _KNOWN)
        if unknown:
            raise ConfigError(f"hf_ssl: unknown config keys {unknown}; known: {sorted(_KNOWN)}")
        ref = self.config.get("model")
        if not ref:
            raise ConfigError("hf_ssl: config key 'model' (hub id or local folder) is required")
        self.ref = str(ref)
        self.revision = self.config.get("revision")
        self.dtype = self.config.get("dtype", "float32")
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"hf_ssl: dtype must be float32 or float16, got {self.dtype!r}")
        if self.dtype == "float16" and not str(device).startswith("cuda"):
            raise ConfigError(f"hf_ssl: dtype float16 needs a CUDA device, not {device!r}")
        self.layer_reduce = self.config.get("layer_reduce", "mean")
        if self.layer_reduce not in ("mean", "concat"):
            raise ConfigError(f"hf_ssl: layer_reduce must be mean or concat, got {self.layer_reduce!r}")

        self.random_init = self.ref.startswith(RANDOM_PREFIX)
        if self.random_init:
            self._build_random()
        else:
            given = [k for k in _RANDOM_ONLY if k in self.config]
            if given:
                raise ConfigError(f"hf_ssl: {', '.join(given)}: applies only to model 'random-init:<family>', "
                                  f"not to {self.ref!r}")
            load_from = os.path.expanduser(self.ref) if is_local(self.ref) else self.ref
            try:
                self.model = AutoModel.from_pretrained(load_from, revision=self.revision)
            except OSError as e:
                raise ConfigError(f"hf_ssl: cannot load model {self.ref!r}: {e}") from e
        cfg = self.model.config
        if not hasattr(cfg, "conv_stride") or not hasattr(cfg, "conv_kernel"):
            raise ConfigError(f"hf_ssl: {self.ref!r} ({type(self.model).__name__}) is not a conv-feature "
                              "speech model (wav2vec 2.0 / HuBERT / WavLM)")
        self.model.eval().to(self.device)
        self._kernels, self._strides = list(cfg.conv_kernel), list(cfg.conv_stride)
        self.hop = math.prod(self._strides)
        self.receptive_field = 1 + sum((k - 1) * math.prod(self._strides[:i]) for i, k in enumerate(self._kernels))
        self.frame_rate = SAMPLE_RATE / self.hop
        self.group_norm = getattr(cfg, "feat_extract_norm", "layer") == "group"
        n_hidden = cfg.num_hidden_layers + 1
        self.layers = parse_layers(self.config.get("layer", -1), n_hidden, "hf_ssl")
        n_cat = len(self.layers) if self.layer_reduce == "concat" else 1
        self._dim = cfg.hidden_size * n_cat

        pre = None if self.random_init else _read_preprocessor(self.ref, self.revision)
        if pre is not None and "do_normalize" in pre:
            if "do_normalize" in self.config and bool(self.config["do_normalize"]) != bool(pre["do_normalize"]):
                raise ConfigError(
                    f"hf_ssl: do_normalize={self.config['do_normalize']} contradicts the model's "
                    f"preprocessor_config.json (do_normalize={pre['do_normalize']}); remove the key")
            self.do_normalize = bool(pre["do_normalize"])
            self._normalize_source = "preprocessor_config"
        else:
            # Random-init models have no preprocessor_config.json to ask. Their first conv layer
            # has no bias and is followed by a group norm over the utterance, which removes the
            # input's offset and scale anyway, so normalising first would change next to nothing.
            self.do_normalize = bool(self.config.get("do_normalize", not self.random_init))
            self._normalize_source = "config" if "do_normalize" in self.config else "default"

        self.max_chunk_seconds = self.config.get("max_chunk_seconds")
        self.context_seconds = float(self.config.get("chunk_context_seconds", 2.0))
        self.max_batch_seconds = float(self.config.get("max_batch_seconds", 80.0))
        if self.max_chunk_seconds is not None:
            window = int(float(self.max_chunk_seconds) * SAMPLE_RATE)
            ctx = round(self.context_seconds * self.frame_rate)
            core = _conv_out_len(window, self._kernels, self._strides) - 2 * ctx
            if core < 1:
                raise ConfigError(
                    f"hf_ssl: max_chunk_seconds={self.max_chunk_seconds} leaves no room for "
                    f"2 x chunk_context_seconds={self.context_seconds}; raise the first or lower the second")
            self._ctx_frames, self._core_frames = ctx, core
        if self.random_init:
            self._provenance = {"random_init": True, "model_checksum": self.checkpoint_id}
        else:
            self._provenance = model_provenance(self.ref, self.revision)

    def _build_random(self) -> None:
        family = self.ref[len(RANDOM_PREFIX):]
        if family not in RANDOM_FAMILIES:
            raise ConfigError(f"hf_ssl: unknown random-init family {family!r} in model {self.ref!r}; "
                              f"known: {', '.join(RANDOM_FAMILIES)}")
        if self.revision is not None:
            raise ConfigError(f"hf_ssl: revision does not apply to {self.ref!r} (no hub model)")
        size = self.config.get("random_init_size", "small")
        if size not in RANDOM_SIZES:
            raise ConfigError(f"hf_ssl: random_init_size must be one of {', '.join(RANDOM_SIZES)}, got {size!r}")
        seed = self.config.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"hf_ssl: seed must be an int, got {seed!r}")
        self.family, self.size, self.seed = family, size, int(seed)
        self.model = build_random_model(family, size, self.seed)
        self.checkpoint_id = f"{RANDOM_PREFIX}{family}:{size}:seed={self.seed}"

    @property
    def dim(self) -> int:
        return self._dim

    def n_frames(self, n_samples: int) -> int:
        return _conv_out_len(n_samples, self._kernels, self._strides)

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        # Wav2Vec2FeatureExtractor's formula (eps 1e-7), over the utterance's own samples only,
        # with float64 statistics; applied before chunking so every window shares one scaling.
        if not self.do_normalize:
            return x
        x64 = x.astype(np.float64)
        return ((x64 - x64.mean()) / np.sqrt(x64.var() + 1e-7)).astype(np.float32)

    def _pieces(self, n: int) -> list[tuple[int, int, int, int]]:
        """(start sample, end sample, first kept frame, end kept frame) in window-local frames."""
        total = self.n_frames(n)
        if self.max_chunk_seconds is None or n <= int(float(self.max_chunk_seconds) * SAMPLE_RATE):
            return [(0, n, 0, total)]
        out = []
        for a in range(0, total, self._core_frames):
            b = min(a + self._core_frames, total)
            f0, f1 = max(0, a - self._ctx_frames), min(total, b + self._ctx_frames)
            out.append((f0 * self.hop, (f1 - 1) * self.hop + self.receptive_field, a - f0, b - f0))
        return out

    def _forward(self, wavs: list[np.ndarray]) -> list[torch.Tensor]:
        lens = [w.size for w in wavs]
        longest = max(lens)
        batch = np.zeros((len(wavs), longest), dtype=np.float32)
        for i, w in enumerate(wavs):
            batch[i, : w.size] = w
        x = torch.from_numpy(batch).to(self.device)
        mask = None
        if len(set(lens)) > 1:
            if self.group_norm:  # never reached: _run groups group-norm input by exact length
                raise AssertionError("padded batch for a group-norm model")
            mask = torch.zeros(x.shape, dtype=torch.long, device=self.device)
            for i, n in enumerate(lens):
                mask[i, :n] = 1
        use_amp = self.dtype == "float16"
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
            out = self.model(x, attention_mask=mask, output_hidden_states=True)
        feats = reduce_layers(out.hidden_states, self.layers, self.layer_reduce).float()
        return [feats[i, : self.n_frames(n)] for i, n in enumerate(lens)]

    def _run(self, pieces: list[np.ndarray]) -> list[torch.Tensor]:
        """Forward all pieces in as few passes as the batching rules and memory bound allow."""
        results: list = [None] * len(pieces)
        order = sorted(range(len(pieces)), key=lambda i: pieces[i].size)
        budget = int(self.max_batch_seconds * SAMPLE_RATE)
        group: list[int] = []

        def flush():
            if group:
                for i, f in zip(group, self._forward([pieces[i] for i in group])):
                    results[i] = f
                group.clear()

        for i in order:
            if group:
                same_len = pieces[group[0]].size == pieces[i].size
                fits = (len(group) + 1) * pieces[i].size <= budget  # sorted: i is the longest
                if not fits or (self.group_norm and not same_len):
                    flush()
            group.append(i)
        flush()
        return results

    def extract_batch(self, items: list, sample_rate: int = SAMPLE_RATE) -> list:
        if sample_rate != SAMPLE_RATE:
            raise ConfigError(f"hf_ssl expects {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        pieces, owners = [], []
        for u, x in enumerate(items):
            x = np.asarray(x, dtype=np.float32)
            if x.ndim != 1 or x.size == 0:
                raise SerError(f"hf_ssl: item {u} is not a non-empty mono waveform (shape {x.shape})")
            x = self._normalise(x)
            if x.size < self.receptive_field:
                # Too short for a single frame (25 ms): pad with silence to get one.
                x = np.pad(x, (0, self.receptive_field - x.size))
            for s, e, k0, k1 in self._pieces(x.size):
                pieces.append(x[s:e])
                owners.append((u, k0, k1))
        feats = self._run(pieces)
        per_utt: list[list[torch.Tensor]] = [[] for _ in items]
        for (u, k0, k1), f in zip(owners, feats):
            per_utt[u].append(f[k0:k1])
        return [as_float32_frames(torch.cat(p, 0).cpu().numpy()) for p in per_utt]

    def info(self) -> dict:
        import transformers
        return {
            **self._provenance,
            "model": self.ref,
            "model_class": type(self.model).__name__,
            "layers": ",".join(map(str, self.layers)),
            "do_normalize": self.do_normalize,
            "do_normalize_source": self._normalize_source,
            "dtype": self.dtype,
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
        }
