"""Thin click CLI over the package's stage functions; Snakemake rules call these.

Rules pass each job's settings as one JSON ``--spec`` (built from config.yaml by
ser_pipeline.config), so a shell line never changes when a hyperparameter does: the
spec sits in the rule's params, which is what decides reruns.

Each stage lives in its own module under ``ser_pipeline.commands`` and is imported only
when it runs. That keeps ``--help`` instant and, more importantly, makes a job's code
digest (:mod:`ser_pipeline.codedeps`) cover its own stage and nothing else: editing the
plot command does not retrain a model.
"""
from __future__ import annotations

import importlib
import sys

import click

from ser_pipeline.errors import SerError

# command name -> (module under ser_pipeline.commands, one-line help)
COMMANDS = {
    "demo-corpus": ("demo_corpus", "Generate a built-in offline demo corpus in a real corpus layout."),
    "download": ("download", "Download and verify an open corpus (RAVDESS, CREMA-D, EmoDB) into its folder."),
    "prepare": ("prepare", "Read a corpus into the manifest (every labelled utterance) and report it."),
    "utterances": ("utterances", "The manifest rows any experiment on a corpus uses (what features cover)."),
    "folds": ("folds", "Write a protocol's fold file, refusing leakage and empty parts."),
    "extract": ("extract", "Extract one feature for one corpus into a Zarr store."),
    "train": ("train", "Train and test one (model, fold, data size, seed); write result and model."),
    "table": ("table", "Aggregate run JSONs into a Markdown + CSV table beside the paper's numbers."),
    "plot": ("plot", "Scaling curve or confusion matrices of an experiment."),
    "crosscorpus": ("crosscorpus", "Apply a fold model to another corpus and score it (cross-corpus tables)."),
    "probe": ("probe", "Speaker probe and t-SNE of the encoder output of one experiment's models."),
    "predict": ("predict", "Run a trained model on audio files or a CSV of them (any sample rate)."),
    "export": ("export", "Train one model on all of a corpus into a self-contained model folder."),
    "summary": ("summary", "Concatenate every experiment table into one Markdown summary."),
    "check-config": ("check_config", "Validate a config file against the schema and its cross-references."),
}


def stage_module(command: str) -> str:
    return f"ser_pipeline.commands.{COMMANDS[command][0]}"


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(stage_module(name)).command

    def format_commands(self, ctx, formatter):
        formatter.write_heading("Commands")
        formatter.write_dl([(name, COMMANDS[name][1]) for name in sorted(COMMANDS)])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SerError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """ser_pipeline stages. Normally run by Snakemake; each works on its own too."""
    from ser_pipeline import importlog

    importlog.install()


def parse_spec(text: str) -> dict:
    """The JSON ``--spec`` every stage takes.

    Specs are written with sorted keys (so a digest never depends on dict order); an
    experiment's ``model_order`` restores the order of its models, which decides its rows.
    """
    import json

    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"--spec is not JSON: {e}")
    if "model_order" in spec and "experiment" in spec:
        models = spec["experiment"]["models"]
        spec["experiment"]["models"] = {m: models[m] for m in spec["model_order"]}
    return spec


if __name__ == "__main__":
    main()
