"""ser_pipeline: a feature-caching Snakemake pipeline for speech emotion recognition research.

Every stage is a plain function in this package; the Snakemake rules only call
``python -m ser_pipeline <stage>`` so that all logic stays testable without Snakemake.
"""

__version__ = "0.1.0"

SAMPLE_RATE = 16000
"""All corpora are read at 16 kHz, the rate every paper we reproduce (and wav2vec) assumes."""
