"""The corpus stage: the manifest of every labelled utterance, and the rows experiments use.

The manifest keeps every utterance with the corpus's own label, and the stage reports
what it found (utterances per label and session, speakers), so a corpus that lost a
folder shows it in the log before anything trains. Which rows are used is the protocols'
business: :func:`used_utterances` keeps the union of the rows any protocol's label set
maps to a class, and features are extracted for exactly those, once.
"""
from __future__ import annotations

import pandas as pd

from ser_pipeline.corpora import prepare_corpus
from ser_pipeline.errors import CorpusError
from ser_pipeline.manifest import read_manifest, write_manifest
from ser_pipeline.protocols.labels import map_labels


def prepare_manifest(loader: str, path, corpus: str, options: dict, out, demo: dict | None = None,
                     audit: dict | None = None, audit_report=None) -> str:
    """Write the manifest of corpus ``corpus``; with ``demo``, ``path`` is where the demo
    generator put it (the generator returns the corpus root without regenerating it).

    Every audio file is audited first (:func:`ser_pipeline.corpora.audit.audit_audio`, all
    files at once): errors stop the job listing every bad file; warnings go to
    ``audit_report``, which the results summary links.
    """
    from ser_pipeline.corpora.audit import audit_audio

    if demo is not None:
        from ser_pipeline.corpora import demo_function

        path = demo_function(loader)(path, **demo)
    df = prepare_corpus(loader, path, corpus=corpus, **options)
    if df.empty:
        raise CorpusError(f"corpus {corpus} ({path}): the loader found no utterance")
    found = audit_audio(df, audit or {}, report_path=audit_report, key=f"corpora.{corpus}.audit")
    write_manifest(df, out)
    warnings = len(found.findings)
    return report(df) + (f"\naudio audit: {warnings} warning(s), see {audit_report}" if warnings else
                         "\naudio audit: no finding")


def report(df: pd.DataFrame) -> str:
    by = "session" if (df["session"] != "").any() else "speaker"
    counts = df.groupby([by, "label"]).size().unstack(fill_value=0)
    return (f"{len(df)} utterances, {df['speaker'].nunique()} speakers, labels "
            f"{df['label'].value_counts().sort_index().to_dict()}\n{counts.to_string()}")


def used_utterances(manifest, label_specs: list[dict], out, keep_all: bool = False) -> str:
    df = read_manifest(manifest)
    keep = pd.Series(keep_all, index=df.index)
    lines = ["every row is kept: a cross-corpus rule scores this corpus"] if keep_all else []
    for spec in label_specs:
        mapped, rep = map_labels(df, spec, f"{manifest}")
        keep |= mapped.notna()
        lines.append(f"label set {spec['classes']} (column {spec.get('column', 'label')}, merge "
                     f"{spec.get('merge') or {}}): keeps {int(mapped.notna().sum())} of {len(df)}: "
                     + ", ".join(f"{k} {v['n']}" + (f"->{v['kept_as']}" if v["kept_as"] else " dropped")
                                 for k, v in rep.items()))
    used = df[keep].reset_index(drop=True)
    write_manifest(used, out)
    return "\n".join(lines + [f"{len(used)} of {len(df)} utterances are used by some experiment"])
