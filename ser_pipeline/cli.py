"""Thin click CLI over the package's stage functions; Snakemake rules call these.

Rules pass each job's settings as one JSON ``--spec`` (built from config.yaml by
ser_pipeline.config), so a shell line never changes when a hyperparameter does: the
spec sits in the rule's params, which is what decides reruns.
"""
from __future__ import annotations

import json
import sys
import time

import click

from ser_pipeline.errors import SerError


def _spec(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"--spec is not JSON: {e}")


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SerError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """ser_pipeline stages. Normally run by Snakemake; each works on its own too."""


@main.command("demo-corpus")
@click.option("--out", required=True, type=click.Path(), help="folder to create the corpus in")
@click.option("--seed", default=0, show_default=True)
@click.option("--per-class", default=12, show_default=True, help="utterances per speaker per class")
@click.option("--sessions", default=5, show_default=True)
def demo_corpus(out, seed, per_class, sessions):
    """Synthesise the offline demo corpus in IEMOCAP layout (espeak-ng)."""
    from ser_pipeline.corpora.demo import generate_demo_corpus

    root = generate_demo_corpus(out, seed=seed, utterances_per_speaker_per_class=per_class, sessions=sessions)
    click.echo(f"demo corpus ready: {root}")


@main.command()
@click.option("--spec", required=True, help="JSON: {corpus, loader, path, options}")
@click.option("--out", required=True, type=click.Path(), help="manifest CSV to write")
def prepare(spec, out):
    """Read a corpus into the manifest (one row per utterance)."""
    from ser_pipeline.corpora import prepare_corpus
    from ser_pipeline.manifest import write_manifest

    s = _spec(spec)
    df = prepare_corpus(s["loader"], s["path"], corpus=s["corpus"], **(s.get("options") or {}))
    classes = s.get("classes")
    if classes:
        df = df[df["label"].isin(classes)].reset_index(drop=True)
    write_manifest(df, out)
    counts = df.groupby(["session", "label"]).size().unstack(fill_value=0)
    click.echo(f"{len(df)} utterances, {df['speaker'].nunique()} speakers\n{counts.to_string()}")


@main.command()
@click.option("--manifest", required=True, type=click.Path(exists=True))
@click.option("--spec", required=True, help="JSON: {corpus, protocol, scheme, filter, script_disjoint}")
@click.option("--out", required=True, type=click.Path())
def folds(manifest, spec, out):
    """Write a protocol's fold file, refusing any speaker leakage."""
    from ser_pipeline.manifest import read_manifest
    from ser_pipeline.protocols.folds import write_fold_file

    s = _spec(spec)
    doc = write_fold_file(read_manifest(manifest), s["protocol_spec"], out, s["corpus"], s["protocol"],
                          expected_folds=s.get("expected_folds"))
    for f in doc["folds"]:
        click.echo(f"{f['name']}: test {f.get('test_speaker') or f['test_session']} "
                   f"train {len(f['train'])} val {len(f['val'])} test {len(f['test'])}")


@main.command()
@click.option("--manifest", required=True, type=click.Path(exists=True))
@click.option("--spec", required=True, help="JSON: a features: entry of config.yaml")
@click.option("--out", required=True, type=click.Path())
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", default=0, help="torch threads (0: torch's default)")
def extract(manifest, spec, out, device, threads):
    """Extract one feature for one corpus into a Zarr store."""
    from ser_pipeline.device import resolve_device, set_threads
    from ser_pipeline.features.runner import extract_corpus

    set_threads(threads)
    stats = extract_corpus(manifest, out, _spec(spec)["feature"], resolve_device(device))
    click.echo(json.dumps(stats))


@main.command()
@click.option("--spec", required=True, help="JSON built by the Snakefile (model, fold, size, seed, paths)")
@click.option("--out", required=True, type=click.Path())
@click.option("--threads", default=1, show_default=True)
def train(spec, out, threads):
    """Train and test one (model, fold, data size, seed); write the result JSON."""
    from ser_pipeline.atomic import write_json
    from ser_pipeline.device import resolve_device, set_threads
    from ser_pipeline.training.loop import run_training

    set_threads(threads)
    s = _spec(spec)
    s["device"] = resolve_device(s.get("device"))
    result = run_training(s)
    write_json(out, result)
    m = result["metrics"]
    click.echo(f"{s['model_name']} {s['fold']} n={s['size']} seed={s['seed']}: "
               f"UA {100 * m['UA']:.1f}  WA {100 * m['WA']:.1f}  ({result['wall_seconds']} s on {s['device']})")


@main.command()
@click.option("--spec", required=True, help="JSON: {name, experiment, corpus_info}")
@click.option("--out-md", required=True, type=click.Path())
@click.option("--out-csv", required=True, type=click.Path())
@click.argument("runs", nargs=-1, type=click.Path(exists=True))
def table(spec, out_md, out_csv, runs):
    """Aggregate run JSONs into a Markdown + CSV table beside the paper's numbers."""
    from ser_pipeline.reporting.tables import write_table

    s = _spec(spec)
    click.echo(write_table(s["name"], s["experiment"], list(runs), out_md, out_csv, s.get("corpus_info", "")))


@main.command()
@click.option("--spec", required=True)
@click.option("--kind", type=click.Choice(["scaling", "confusion"]), required=True)
@click.option("--out", "outs", multiple=True, required=True, type=click.Path())
@click.argument("runs", nargs=-1, type=click.Path(exists=True))
def plot(spec, kind, outs, runs):
    """Scaling curve (PNG + SVG) or confusion matrices (PNG) of an experiment."""
    from ser_pipeline.reporting.plots import confusion_plot, scaling_plot
    from ser_pipeline.reporting.tables import load_runs

    s = _spec(spec)
    loaded = load_runs(list(runs))
    if kind == "scaling":
        scaling_plot(s["name"], s["experiment"], loaded, *outs)
    else:
        confusion_plot(s["experiment"], loaded, outs[0])
    click.echo(f"wrote {', '.join(outs)}")


@main.command()
@click.option("--out", required=True, type=click.Path())
@click.argument("tables", nargs=-1, type=click.Path(exists=True))
def summary(out, tables):
    """Concatenate every experiment table into one Markdown summary."""
    from pathlib import Path

    from ser_pipeline.atomic import write_text

    parts = [f"# ser_pipeline results\n\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S')}.\n"]
    parts += [Path(t).read_text() for t in tables if t.endswith(".md")]
    write_text(out, "\n\n".join(parts))
    click.echo(f"wrote {out}")


@main.command("check-config")
@click.argument("path", type=click.Path())
def check_config(path):
    """Validate a config file against the schema and its cross-references."""
    from ser_pipeline.config import all_outputs, load_config

    cfg = load_config(path)
    click.echo(f"{path}: valid; {len(all_outputs(cfg))} final outputs")


if __name__ == "__main__":
    main()
