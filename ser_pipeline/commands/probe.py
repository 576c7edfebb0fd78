"""``probe``: how much speaker identity each system's encoder output still carries."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("probe")
@click.option("--spec", required=True, help="JSON: {name, experiment, embeddings: {model: {fold: npz}}}")
@click.option("--out-md", required=True, type=click.Path())
@click.option("--out-png", required=True, type=click.Path())
def command(spec, out_md, out_png):
    """Speaker probe per system over every fold, and the t-SNE figure of one fold."""
    from ser_pipeline.reporting.probe_table import write_probe_outputs

    s = parse_spec(spec)
    click.echo(write_probe_outputs(s["name"], s["experiment"], s["embeddings"], out_md, out_png))
