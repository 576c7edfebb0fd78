"""wav2vec 1.0 (Schneider et al., 2019) as a small pure-PyTorch module that reads fairseq checkpoints.

Why not fairseq itself: fairseq 0.12.2 does not import on Python 3.11, the community fork
``fairseq-fixed`` needs a fragile source build, and inference needs only two plain conv stacks.
The module below keeps fairseq's parameter names, so the official ``wav2vec_large.pt`` state dict
loads unchanged, and ``tests/unit/test_wav2vec1_fairseq_parity.py`` checks that its outputs are
bit-for-bit those of fairseq on the same weights. fairseq is therefore a test-time reference only.

Outputs follow the paper and fairseq's README: the encoder ``z = f(x)`` (``output: encoder``) and
the context network ``c = g(z)`` (``output: context``, default), both 512-dim at 100 frames/s.
"""
from __future__ import annotations

import argparse
import ast
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ser_pipeline.errors import ConfigError, SerError
from ser_pipeline.features.base import Extractor, as_float32_frames, register
from ser_pipeline.features.checksum import file_sha256

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000

# The wav2vec large recipe of fairseq's examples/wav2vec README (and the paper: two extra 1x1
# layers in the encoder, twelve context layers with kernels 2..13 and skip connections), used for
# random-init runs so that shapes, receptive field (810 ms) and cost match the real model.
LARGE_ARGS: dict = {
    "conv_feature_layers": "[(512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2), "
                           "(512, 1, 1), (512, 1, 1)]",
    "conv_aggregator_layers": "[(512, 2, 1), (512, 3, 1), (512, 4, 1), (512, 5, 1), (512, 6, 1), "
                              "(512, 7, 1), (512, 8, 1), (512, 9, 1), (512, 10, 1), (512, 11, 1), "
                              "(512, 12, 1), (512, 13, 1)]",
    "aggregator": "cnn",
    "skip_connections_feat": False,
    "skip_connections_agg": True,
    "residual_scale": 0.5,
    "log_compression": True,
    "no_conv_bias": False,
    "agg_zero_pad": False,
    "non_affine_group_norm": False,
    "activation": "relu",
    "gru_dim": 512,
    "vq_type": "none",
    "offset": "auto",
    "project_features": "none",
    "prediction_steps": 12,
}

# Fields a checkpoint may lack, with the value fairseq 0.12 assumes for them (its Wav2VecConfig
# defaults). Old checkpoints predate "activation" and "vq_type"; the fields that define the
# layer stack have no safe default and must be present.
_FAIRSEQ_DEFAULTS: dict = {
    "aggregator": "cnn",
    "skip_connections_feat": False,
    "skip_connections_agg": True,
    "residual_scale": 0.5,
    "log_compression": True,
    "no_conv_bias": False,
    "agg_zero_pad": False,
    "non_affine_group_norm": False,
    "activation": "relu",
    "gru_dim": 512,
    "vq_type": "none",
    "offset": "auto",
    "project_features": "none",
    "prediction_steps": 12,
}
_REQUIRED = ("conv_feature_layers",)


def parse_layer_spec(spec) -> tuple[tuple[int, int, int], ...]:
    """Parse fairseq's ``"[(dim, kernel, stride), ...]"`` strings without ``eval``.

    fairseq evaluates these strings as Python; a checkpoint is untrusted input, so only list and
    tuple literals of integers combined with ``+`` and ``*`` (as in ``"[(512, 3, 1)] * 9"``) are
    accepted here.
    """
    if isinstance(spec, (list, tuple)):
        value = spec
    else:
        try:
            tree = ast.parse(str(spec), mode="eval")
        except SyntaxError as e:
            raise ConfigError(f"wav2vec1 layer spec {spec!r} is not a list of (dim, kernel, stride)") from e

        def ev(node):
            if isinstance(node, ast.Expression):
                return ev(node.body)
            if isinstance(node, ast.Constant) and type(node.value) is int:
                return node.value
            if isinstance(node, ast.List):
                return [ev(e) for e in node.elts]
            if isinstance(node, ast.Tuple):
                return tuple(ev(e) for e in node.elts)
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
                a, b = ev(node.left), ev(node.right)
                return a + b if isinstance(node.op, ast.Add) else a * b
            raise ConfigError(f"wav2vec1 layer spec {spec!r}: unsupported expression {ast.dump(node)}")

        value = ev(tree)
    try:
        layers = tuple((int(d), int(k), int(s)) for d, k, s in value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"wav2vec1 layer spec {spec!r} is not a list of (dim, kernel, stride)") from e
    if not layers:
        raise ConfigError(f"wav2vec1 layer spec {spec!r} is empty")
    return layers


def _plain(v):
    """Undo the stand-ins of ``load_fairseq_checkpoint`` for enum-like values (ChoiceEnum members)."""
    if isinstance(v, _Opaque):
        args = v.__dict__.get("_args", ())
        if len(args) == 1:
            return _plain(args[0])
        return v.__dict__.get("_state", v)
    return v


@dataclass(frozen=True)
class Wav2Vec1Arch:
    """The inference-relevant hyperparameters of a fairseq ``wav2vec`` model."""

    feature_layers: tuple
    aggregator: str
    aggregator_layers: tuple
    gru_dim: int
    conv_bias: bool
    zero_pad: bool
    skip_feat: bool
    skip_agg: bool
    residual_scale: float
    log_compression: bool
    affine_norm: bool
    activation: str
    vq_type: str

    @classmethod
    def from_args(cls, args) -> tuple["Wav2Vec1Arch", list[str]]:
        """Build from a checkpoint's ``args`` (Namespace or dict); also return the defaulted fields."""
        a = dict(vars(args)) if isinstance(args, argparse.Namespace) else dict(args)
        a = {k: _plain(v) for k, v in a.items()}
        missing = [k for k in _REQUIRED if a.get(k) is None]
        if missing:
            raise ConfigError(f"wav2vec1 checkpoint args lack {', '.join(missing)}")
        defaulted = sorted(k for k in _FAIRSEQ_DEFAULTS if a.get(k) is None)
        for k in defaulted:
            a[k] = _FAIRSEQ_DEFAULTS[k]
        aggregator = str(a["aggregator"])
        if aggregator not in ("cnn", "gru"):
            raise ConfigError(f"wav2vec1 checkpoint: aggregator {aggregator!r} is not cnn or gru")
        if aggregator == "cnn" and a.get("conv_aggregator_layers") is None:
            raise ConfigError("wav2vec1 checkpoint args lack conv_aggregator_layers")
        vq = str(a["vq_type"])
        if vq not in ("none", "None"):
            # vq-wav2vec puts a quantiser between encoder and context network; its outputs are
            # a different model's, so refuse rather than silently skip the quantiser.
            raise ConfigError(f"wav2vec1 checkpoint has vq_type={vq!r} (vq-wav2vec): not supported")
        activation = str(a["activation"])
        if activation not in ("relu", "gelu"):
            raise ConfigError(f"wav2vec1 checkpoint: activation {activation!r} is not relu or gelu")
        arch = cls(
            feature_layers=parse_layer_spec(a["conv_feature_layers"]),
            aggregator=aggregator,
            aggregator_layers=parse_layer_spec(a["conv_aggregator_layers"]) if aggregator == "cnn" else (),
            gru_dim=int(a["gru_dim"]),
            conv_bias=not bool(a["no_conv_bias"]),
            zero_pad=bool(a["agg_zero_pad"]),
            skip_feat=bool(a["skip_connections_feat"]),
            skip_agg=bool(a["skip_connections_agg"]),
            residual_scale=float(a["residual_scale"]),
            log_compression=bool(a["log_compression"]),
            affine_norm=not bool(a["non_affine_group_norm"]),
            activation=activation,
            vq_type="none",
        )
        return arch, [k for k in defaulted if k not in ("offset", "project_features", "prediction_steps")]

    @property
    def embed_dim(self) -> int:
        return self.feature_layers[-1][0]

    @property
    def context_dim(self) -> int:
        return self.aggregator_layers[-1][0] if self.aggregator == "cnn" else self.gru_dim

    @property
    def hop(self) -> int:
        """Samples between encoder frames (160 for the published models: 10 ms at 16 kHz)."""
        return math.prod(s for _, _, s in self.feature_layers)

    @property
    def receptive_field(self) -> int:
        """Samples that one encoder frame sees; shorter input yields no frame at all."""
        r, jump = 1, 1
        for _, k, s in self.feature_layers:
            r += (k - 1) * jump
            jump *= s
        return r


class _GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype, as fairseq's Fp32GroupNorm."""

    def forward(self, x):
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).type_as(x)


class _CausalPad(nn.Module):
    """Left padding by kernel-1 frames: every context frame sees only the past, as trained."""

    def __init__(self, amount: int, zero: bool):
        super().__init__()
        self.amount, self.mode = amount, ("constant" if zero else "replicate")

    def forward(self, x):
        return F.pad(x, (self.amount, 0), mode=self.mode)


def _act(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.GELU()


class _Encoder(nn.Module):
    # Each block is (conv, dropout slot, norm, activation) so that parameter names are fairseq's
    # ``feature_extractor.conv_layers.{i}.0.weight`` / ``.2.weight`` / ``.2.bias``.
    def __init__(self, arch: Wav2Vec1Arch):
        super().__init__()
        self.conv_layers = nn.ModuleList()
        n_in = 1
        for dim, k, s in arch.feature_layers:
            self.conv_layers.append(nn.Sequential(
                nn.Conv1d(n_in, dim, k, stride=s, bias=False),
                nn.Identity(),
                _GroupNorm32(1, dim, affine=arch.affine_norm),
                _act(arch.activation),
            ))
            n_in = dim
        self.skip = arch.skip_feat
        self.scale = math.sqrt(arch.residual_scale)
        self.log_compression = arch.log_compression

    def forward(self, wav):  # [B, samples] -> [B, C, T]
        x = wav.unsqueeze(1)
        for block in self.conv_layers:
            prev = x
            x = block(x)
            if self.skip and x.size(1) == prev.size(1):
                t_out, t_in = x.size(2), prev.size(2)
                x = (x + prev[..., :: t_in // t_out][..., :t_out]) * self.scale
        if self.log_compression:
            # Three separate ops, not log1p: bit-identical to fairseq is the point.
            x = x.abs()
            x = x + 1
            x = x.log()
        return x


class _ConvContext(nn.Module):
    # Blocks are (pad, conv, dropout slot, norm, activation): fairseq's
    # ``feature_aggregator.conv_layers.{i}.1.weight`` etc.; 1x1 projections sit in
    # ``residual_proj.{i}`` only where a skip connection changes width.
    def __init__(self, arch: Wav2Vec1Arch):
        super().__init__()
        self.conv_layers = nn.ModuleList()
        self.residual_proj = nn.ModuleList()
        n_in = arch.embed_dim
        for dim, k, s in arch.aggregator_layers:
            self.residual_proj.append(
                nn.Conv1d(n_in, dim, 1, bias=False) if (arch.skip_agg and n_in != dim) else None)
            self.conv_layers.append(nn.Sequential(
                _CausalPad(k - 1, arch.zero_pad),
                nn.Conv1d(n_in, dim, k, stride=s, bias=arch.conv_bias),
                nn.Identity(),
                _GroupNorm32(1, dim, affine=arch.affine_norm),
                _act(arch.activation),
            ))
            n_in = dim
        self.skip = arch.skip_agg
        self.scale = math.sqrt(arch.residual_scale)

    def forward(self, z):
        x = z
        for proj, block in zip(self.residual_proj, self.conv_layers):
            prev = x
            x = block(x)
            if self.skip:
                if proj is not None:
                    prev = proj(prev)
                x = (x + prev) * self.scale
        return x


class _GruContext(nn.Module):
    # fairseq wraps the GRU as module "1" of a Sequential, hence the name. It hands nn.GRU a
    # [B, T, C] tensor in sequence-first mode, i.e. the batch axis is run as time; with one
    # utterance per call that makes each frame independent. Reproduced as is: these are the
    # computations the weights were trained with.
    def __init__(self, arch: Wav2Vec1Arch):
        super().__init__()
        self.add_module("1", nn.GRU(input_size=arch.embed_dim, hidden_size=arch.gru_dim, num_layers=1))

    def forward(self, z):
        out, _ = getattr(self, "1")(z.transpose(-2, -1))
        return out.transpose(-2, -1)


class Wav2Vec1(nn.Module):
    """Encoder f and context network g of wav2vec 1.0, parameter names as in fairseq."""

    def __init__(self, arch: Wav2Vec1Arch):
        super().__init__()
        self.arch = arch
        self.feature_extractor = _Encoder(arch)
        self.feature_aggregator = _ConvContext(arch) if arch.aggregator == "cnn" else _GruContext(arch)

    def forward(self, wav: torch.Tensor, output: str = "context") -> torch.Tensor:
        """[B, samples] float32 -> [B, C, T]."""
        z = self.feature_extractor(wav)
        return z if output == "encoder" else self.feature_aggregator(z)

    def random_init_(self, seed: int) -> "Wav2Vec1":
        """Deterministic weights from ``seed`` alone (a private generator; global RNG untouched).

        He-normal convolutions keep the activations of the 19-layer stack in a sane range, so
        random-init features are not degenerate; norms start at identity as in training.
        """
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() >= 2:  # conv kernels and GRU matrices
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in))
                elif "feature_aggregator.1" in name:  # GRU biases
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / math.sqrt(self.arch.gru_dim))
                elif name.endswith("weight"):  # GroupNorm scale
                    p.fill_(1.0)
                else:
                    p.zero_()
        return self


class _Opaque:
    """Inert stand-in for training bookkeeping classes pickled into fairseq checkpoints.

    Old checkpoints carry fairseq meter objects (and newer ones omegaconf/enum values) next to
    the weights. Loading them with ``weights_only=False`` would run arbitrary pickled code;
    instead every such class name is mapped to a subclass of this, which only stores the
    arguments it is given, so nothing from the checkpoint ever executes.
    """

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_state"] = state

    def __repr__(self):
        return f"<stand-in for {type(self).__qualname__}>"


_GLOBAL_RE = re.compile(r"GLOBAL ([A-Za-z_][\w.]*) was not an allowed global")


def load_fairseq_checkpoint(path) -> tuple[dict, dict, list[str]]:
    """Read a fairseq wav2vec checkpoint safely: returns (args dict, model state dict, stand-ins).

    ``torch.load(weights_only=True)`` with ``argparse.Namespace`` allowed; any other class the
    pickle names is replaced by an inert stand-in (see ``_Opaque``) and reported.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"wav2vec1 checkpoint: {path} does not exist")
    stand_ins: dict[str, type] = {}

    def add(name: str):
        stand_ins[name] = type(name.rsplit(".", 1)[-1], (_Opaque,), {"__qualname__": name})

    try:  # zip-format files can be scanned up front; legacy ones are discovered one by one below
        with torch.serialization.safe_globals([argparse.Namespace]):
            for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)):
                add(name)
    except Exception:
        pass
    for _ in range(256):
        allowed = [argparse.Namespace] + [(cls, name) for name, cls in stand_ins.items()]
        try:
            with torch.serialization.safe_globals(allowed):
                ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
            break
        except Exception as e:  # pickle.UnpicklingError, but torch rewraps some
            m = _GLOBAL_RE.search(str(e))
            if not m or m.group(1) in stand_ins:
                raise ConfigError(f"wav2vec1 checkpoint {path}: cannot be read safely: {e}") from e
            add(m.group(1))
    else:
        raise ConfigError(f"wav2vec1 checkpoint {path}: too many unknown classes in the pickle")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise ConfigError(f"wav2vec1 checkpoint {path}: no 'model' state dict (is it a fairseq checkpoint?)")
    args = ckpt.get("args")
    if args is None and isinstance(ckpt.get("cfg"), dict):  # fairseq >= 0.10 stores cfg instead
        args = ckpt["cfg"].get("model")
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if not isinstance(args, dict):
        raise ConfigError(f"wav2vec1 checkpoint {path}: no readable 'args' or 'cfg.model' hyperparameters")
    arch_name = _plain(args.get("arch", args.get("_name", "wav2vec")))
    if arch_name not in (None, "wav2vec"):
        raise ConfigError(f"wav2vec1 checkpoint {path}: model is {arch_name!r}, not wav2vec (1.0)")
    return args, ckpt["model"], sorted(stand_ins)


def load_wav2vec1(path) -> tuple[Wav2Vec1, dict]:
    """Build the module from a fairseq checkpoint; returns it (eval mode) and provenance info."""
    args, state, stand_ins = load_fairseq_checkpoint(path)
    arch, defaulted = Wav2Vec1Arch.from_args(args)
    model = Wav2Vec1(arch)
    wanted = model.state_dict()
    # Prediction heads (wav2vec_predictions.*, project_features.*) only serve the training loss.
    ours = {k: v for k, v in state.items() if k.startswith(("feature_extractor.", "feature_aggregator."))}
    missing = sorted(set(wanted) - set(ours))
    extra = sorted(set(ours) - set(wanted))
    if missing or extra:
        raise ConfigError(
            f"wav2vec1 checkpoint {path}: weights do not match its args "
            f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for k, v in ours.items():
        if not isinstance(v, torch.Tensor) or v.shape != wanted[k].shape:
            raise ConfigError(f"wav2vec1 checkpoint {path}: {k} has shape "
                              f"{getattr(v, 'shape', type(v).__name__)}, expected {tuple(wanted[k].shape)}")
    model.load_state_dict({k: v.float() for k, v in ours.items()})
    model.eval()
    if stand_ins:
        log.info("%s: read without executing pickled classes %s", path, ", ".join(stand_ins))
    if defaulted:
        log.warning("%s: args lack %s; using fairseq 0.12 defaults", path, ", ".join(defaulted))
    info = {"defaulted_args": defaulted, "stand_ins": stand_ins}
    return model, info


def arch_to_args(arch: Wav2Vec1Arch) -> argparse.Namespace:
    """The fairseq ``args`` Namespace describing ``arch`` (for checkpoints written by us)."""
    spec = lambda layers: "[" + ", ".join(f"({d}, {k}, {s})" for d, k, s in layers) + "]"  # noqa: E731
    a = dict(_FAIRSEQ_DEFAULTS)
    a.update(
        arch="wav2vec",
        conv_feature_layers=spec(arch.feature_layers),
        conv_aggregator_layers=spec(arch.aggregator_layers) if arch.aggregator_layers else LARGE_ARGS["conv_aggregator_layers"],
        aggregator=arch.aggregator, gru_dim=arch.gru_dim, no_conv_bias=not arch.conv_bias,
        agg_zero_pad=arch.zero_pad, skip_connections_feat=arch.skip_feat,
        skip_connections_agg=arch.skip_agg, residual_scale=arch.residual_scale,
        log_compression=arch.log_compression, non_affine_group_norm=not arch.affine_norm,
        activation=arch.activation, vq_type="none",
    )
    return argparse.Namespace(**a)


def save_fairseq_checkpoint(model: Wav2Vec1, path) -> None:
    """Write ``model`` the way fairseq's old checkpoints look: {"args": Namespace, "model": state}.

    Lets random-init runs be replayed from a file, and lets the tests check the loading path.
    """
    torch.save({"args": arch_to_args(model.arch), "model": model.state_dict(),
                "optimizer_history": [], "extra_state": {}}, str(path))


@register("wav2vec1")
class Wav2Vec1Extractor(Extractor):
    """wav2vec 1.0 frames (Boigne et al. use the large model's context output c).

    Config: ``checkpoint`` (path to a fairseq ``wav2vec_large.pt``-style file; null builds the
    large architecture with random weights from ``seed``), ``output`` (context | encoder),
    ``seed`` (default 0), ``max_batch_seconds`` (audio per forward pass, default 80: memory
    bound; the first conv layer alone holds 512 x 3200 floats per second of audio),
    ``compute_dtype`` (float32, the default, or bfloat16: convolutions in bfloat16 under
    autocast, every GroupNorm in float32 as in fairseq; half the time on a CPU with native
    bfloat16 (AVX512-BF16, AMX) or a GPU, and features within about 1 % of the float32 ones,
    correlation 0.9999 on the random-init model; the choice is part of the feature config,
    so its store is a different one).

    Every utterance is run on its own or with partners of exactly its length: the model's
    GroupNorm(1, C) normalises over the whole utterance, so zero padding would change the
    features of the real frames. Inputs shorter than the receptive field (465 samples for the
    published models) are zero-padded to it and give one frame; cropping long input is the
    caller's job, as in the paper (5 s).
    """

    input_kind = "audio"
    frame_rate = 100.0
    supports_gpu = True
    threaded = True

    def __init__(self, config: dict, device: str = "cpu"):
        super().__init__(config, device)
        known = {"checkpoint", "output", "seed", "max_batch_seconds", "compute_dtype"}
        unknown = sorted(set(self.config) - known)
        if unknown:
            raise ConfigError(f"wav2vec1: unknown config keys {unknown}; known: {sorted(known)}")
        self.output = self.config.get("output", "context")
        if self.output not in ("context", "encoder"):
            raise ConfigError(f"wav2vec1: output must be 'context' or 'encoder', got {self.output!r}")
        self.seed = int(self.config.get("seed", 0) or 0)
        self.max_batch_seconds = float(self.config.get("max_batch_seconds", 80.0))
        self.compute_dtype = self.config.get("compute_dtype") or "float32"
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"wav2vec1: compute_dtype must be 'float32' or 'bfloat16', got {self.compute_dtype!r}")
        if not self.max_batch_seconds > 0:
            raise ConfigError("wav2vec1: max_batch_seconds must be > 0")
        ckpt = self.config.get("checkpoint")
        if ckpt in (None, "", "null", "None"):
            arch, _ = Wav2Vec1Arch.from_args(LARGE_ARGS)
            self.model = Wav2Vec1(arch).random_init_(self.seed).eval()
            self.random_init = True
            self.checkpoint_id = f"random-init:seed={self.seed}"
            self._load_info = {"defaulted_args": [], "stand_ins": []}
        else:
            ckpt = Path(str(ckpt)).expanduser()
            self.model, self._load_info = load_wav2vec1(ckpt)
            self.random_init = False
            self.checkpoint_id = "sha256:" + file_sha256(ckpt)
        arch = self.model.arch
        self.frame_rate = SAMPLE_RATE / arch.hop
        self._dim = arch.embed_dim if self.output == "encoder" else arch.context_dim
        self.model.to(self.device)

    @property
    def dim(self) -> int:
        return self._dim

    def extract_batch(self, items: list, sample_rate: int = SAMPLE_RATE) -> list:
        if sample_rate != SAMPLE_RATE:
            raise ConfigError(f"wav2vec1 expects {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        min_len = self.model.arch.receptive_field
        wavs = []
        for i, x in enumerate(items):
            x = np.asarray(x, dtype=np.float32)
            if x.ndim != 1 or x.size == 0:
                raise SerError(f"wav2vec1: item {i} is not a non-empty mono waveform (shape {x.shape})")
            if x.size < min_len:
                x = np.pad(x, (0, min_len - x.size))
            wavs.append(x)
        out: list = [None] * len(wavs)
        by_len: dict[int, list[int]] = {}
        for i, x in enumerate(wavs):
            by_len.setdefault(x.size, []).append(i)
        autocast = torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16,
                                  enabled=self.compute_dtype == "bfloat16")
        with torch.inference_mode(), autocast:
            for n, idx in by_len.items():
                per_pass = max(1, int(self.max_batch_seconds * SAMPLE_RATE) // n)
                if self.model.arch.aggregator == "gru":
                    per_pass = 1  # that GRU runs the batch axis as time: partners would leak
                for s in range(0, len(idx), per_pass):
                    part = idx[s:s + per_pass]
                    batch = torch.from_numpy(np.stack([wavs[i] for i in part])).to(self.device)
                    feats = self.model(batch, self.output).transpose(1, 2).float().cpu().numpy()
                    for j, i in enumerate(part):
                        out[i] = as_float32_frames(feats[j])
        return out

    def info(self) -> dict:
        return {
            "model_checksum": self.checkpoint_id,
            "random_init": self.random_init,
            "output": self.output,
            "compute_dtype": self.compute_dtype,
            "checkpoint_args_defaulted": ",".join(self._load_info["defaulted_args"]),
            "torch_version": torch.__version__,
        }
