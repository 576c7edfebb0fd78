"""eGeMAPS v02 functionals via openSMILE (the SVM baseline of Triantafyllopoulos et al. 2021).

One 88-value vector per utterance, so ``frame_rate`` is None. The ``opensmile`` wheel ships
its own SMILExtract library and config files, so this works offline and gives the same
numbers as the openSMILE command line with ``eGeMAPSv02.conf``. openSMILE runs on the CPU
only, one utterance at a time; it is fast enough that batching would not pay for itself.
"""
from __future__ import annotations

import numpy as np

from ser_pipeline.features.base import Extractor, register
from ser_pipeline.features.spectrogram import check_batch, parse_config, versions

N_FUNCTIONALS = 88
# openSMILE fills every functional with NaN for inputs shorter than about 70 ms (too few
# frames for its longest window); NaNs in the cache would poison training, so such tiny
# utterances are zero-padded to this length instead (silence adds no voiced frames).
MIN_SECONDS = 0.1


@register("egemaps")
class EGeMAPS(Extractor):
    """params: none. Output [1, 88] float32 per utterance, openSMILE's column order
    (``info()['feature_names']``). Features are left unnormalised: the paper normalises on
    the training set or per speaker, both of which depend on the fold."""

    supports_gpu = False
    frame_rate = None
    DEFAULTS: dict = {}

    def __init__(self, config: dict, device: str = "cpu"):
        super().__init__(config, device)
        parse_config("egemaps", self.config, self.DEFAULTS)
        self._smile = None

    @property
    def dim(self) -> int:
        return N_FUNCTIONALS

    def _get_smile(self):
        # Built lazily: creating it loads the native library, which listing the registry
        # (or a Snakemake dry run) should not pay for.
        if self._smile is None:
            import opensmile

            self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                          feature_level=opensmile.FeatureLevel.Functionals)
        return self._smile

    def extract_batch(self, items: list, sample_rate: int = 16000) -> list:
        if not items:
            return []
        check_batch(items, sample_rate)
        smile = self._get_smile()
        outs = []
        min_len = int(MIN_SECONDS * sample_rate)
        for x in items:
            x = np.asarray(x, dtype=np.float32)
            if x.shape[0] < min_len:
                x = np.concatenate([x, np.zeros(min_len - x.shape[0], dtype=np.float32)])
            df = smile.process_signal(x, int(sample_rate))
            v = df.to_numpy(dtype=np.float32).reshape(1, -1)
            if v.shape[1] != N_FUNCTIONALS:
                raise RuntimeError(f"openSMILE returned {v.shape[1]} eGeMAPS values, expected {N_FUNCTIONALS}")
            outs.append(np.ascontiguousarray(v))
        return outs

    def info(self) -> dict:
        smile = self._get_smile()
        return {"feature_set": "eGeMAPSv02", "feature_level": "Functionals",
                "versions": versions("opensmile"), "feature_names": list(smile.feature_names)}
