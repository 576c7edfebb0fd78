"""Our pure-PyTorch wav2vec 1.0 against fairseq itself, bit for bit, on random weights.

This is what licenses running without fairseq: for each architecture variant, a randomly
initialised fairseq ``Wav2VecModel`` is saved as fairseq's old checkpoints are (``args``
Namespace + ``model`` state dict + training bookkeeping), loaded by our extractor, and both
must give identical tensors (``torch.equal``) for the encoder z and the context c.

Needs the fork ``fairseq-fixed`` (fairseq 0.12.2 does not import on Python 3.11):
    pip install wheel cython
    pip install --no-cache-dir --no-build-isolation fairseq-fixed==0.12.3.1
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest
import torch

fairseq = pytest.importorskip("fairseq")

from fairseq import checkpoint_utils  # noqa: E402
from fairseq.logging.meters import AverageMeter  # noqa: E402
from fairseq.models.wav2vec.wav2vec import Wav2VecConfig, Wav2VecModel  # noqa: E402

from ser_pipeline.features.base import get_extractor  # noqa: E402
from ser_pipeline.features.wav2vec1 import LARGE_ARGS  # noqa: E402

pytestmark = pytest.mark.fairseq

SMALL_FEAT = "[(32, 10, 5), (32, 8, 4), (32, 4, 2), (32, 1, 1)]"
SMALL_AGG = "[(32, 2, 1), (48, 3, 1), (48, 4, 1)]"

VARIANTS = {
    # the published large recipe, full size
    "large": {k: v for k, v in LARGE_ARGS.items() if k in {f.name for f in dataclasses.fields(Wav2VecConfig)}},
    # small stacks exercising every switch our module reads
    "small_relu_skip_agg": dict(conv_feature_layers=SMALL_FEAT, conv_aggregator_layers=SMALL_AGG,
                                skip_connections_agg=True, log_compression=True),
    "small_gelu_all_switches": dict(conv_feature_layers=SMALL_FEAT, conv_aggregator_layers=SMALL_AGG,
                                    activation="gelu", skip_connections_feat=True, skip_connections_agg=True,
                                    agg_zero_pad=True, no_conv_bias=True, non_affine_group_norm=True,
                                    residual_scale=0.3, log_compression=False),
    "small_base_recipe": dict(conv_feature_layers="[(32, 10, 5), (32, 8, 4)] + [(32, 4, 2)] * 3",
                              conv_aggregator_layers="[(32, 3, 1)] * 9", skip_connections_agg=False,
                              log_compression=False),
    "small_gru": dict(conv_feature_layers=SMALL_FEAT, aggregator="gru", gru_dim=24),
}


def _fairseq_model(overrides: dict, seed: int) -> tuple[Wav2VecModel, Wav2VecConfig]:
    cfg = Wav2VecConfig(**overrides, infonce=False)
    torch.manual_seed(seed)
    model = Wav2VecModel.build_model(cfg, task=None)
    # fairseq's init leaves norms at identity; perturb them so scale/shift mistakes would show.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval(), cfg


def _save_like_fairseq(model: Wav2VecModel, cfg: Wav2VecConfig, path) -> None:
    # The layout of fairseq's pre-hydra checkpoints such as wav2vec_large.pt: an argparse
    # Namespace of all hyperparameters, the state dict, and trainer bookkeeping that includes
    # fairseq's own meter objects.
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    fields = {k: (v.value if hasattr(v, "value") else v) for k, v in fields.items()}
    args = argparse.Namespace(arch="wav2vec", task="audio_pretraining", criterion="wav2vec", **fields)
    meter = AverageMeter()
    meter.update(1.25)
    state = {
        "args": args,
        "model": model.state_dict(),
        "optimizer_history": [{"criterion_name": "Wav2vecCriterion", "optimizer_name": "Adam",
                               "lr_scheduler_state": {"best": 1.0}, "num_updates": 10}],
        "extra_state": {"train_iterator": {"epoch": 1}, "val_loss": 1.0, "train_meters": {"loss": meter}},
        "last_optimizer_state": None,
    }
    checkpoint_utils.torch_persistent_save(state, str(path))


def _waves():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    speechy = (0.4 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return [speechy + 0.05 * rng.standard_normal(16000).astype(np.float32),
            (0.2 * rng.standard_normal(12345)).astype(np.float32)]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bit_identical_to_fairseq(variant, tmp_path):
    model, cfg = _fairseq_model(VARIANTS[variant], seed=sorted(VARIANTS).index(variant))
    path = tmp_path / f"{variant}.pt"
    _save_like_fairseq(model, cfg, path)

    # fairseq's own loader accepts the file too (so it is a faithful fairseq checkpoint).
    with torch.serialization.safe_globals([argparse.Namespace, AverageMeter]):
        state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    reloaded = Wav2VecModel.build_model(state["cfg"].model, task=None)
    reloaded.load_state_dict(state["model"])
    reloaded.eval()

    ours_c = get_extractor("wav2vec1", {"checkpoint": str(path)})
    ours_z = get_extractor("wav2vec1", {"checkpoint": str(path), "output": "encoder"})
    assert ours_c.info()["checkpoint_args_defaulted"] == ""
    for wav in _waves():
        x = torch.from_numpy(wav)[None]
        with torch.no_grad():
            z = model.feature_extractor(x)
            c = model.feature_aggregator(z)
            assert torch.equal(reloaded.feature_aggregator(reloaded.feature_extractor(x)), c)
        got_c = torch.from_numpy(ours_c.extract_batch([wav])[0])
        got_z = torch.from_numpy(ours_z.extract_batch([wav])[0])
        assert got_c.shape == c[0].T.shape and got_z.shape == z[0].T.shape
        assert torch.equal(got_c, c[0].T.contiguous()), f"{variant}: context differs, max " \
            f"{(got_c - c[0].T).abs().max().item():.3g}"
        assert torch.equal(got_z, z[0].T.contiguous()), f"{variant}: encoder differs"
    if variant == "large":
        assert ours_c.dim == 512 and ours_c.frame_rate == 100.0
        assert ours_c.extract_batch([_waves()[0]])[0].shape == (98, 512)


def test_random_init_large_matches_fairseq_architecture():
    # Our random-init "large" has exactly fairseq's parameter names and shapes for that recipe,
    # so a real wav2vec_large.pt can replace it without any other change.
    model, _ = _fairseq_model(VARIANTS["large"], seed=0)
    ours = get_extractor("wav2vec1", {"checkpoint": None}).model
    theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()
              if k.startswith(("feature_extractor.", "feature_aggregator."))}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs
