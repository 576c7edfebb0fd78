"""``extract``: one feature for one corpus into a Zarr store."""
from __future__ import annotations

import json

import click

from ser_pipeline.cli import parse_spec


@click.command("extract")
@click.option("--manifest", required=True, type=click.Path(exists=True))
@click.option("--spec", required=True, help="JSON: {feature: a features: entry of config.yaml}")
@click.option("--out", required=True, type=click.Path())
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", default=0, help="torch threads (0: torch's default)")
def command(manifest, spec, out, device, threads):
    """Extract one feature for one corpus into a Zarr store."""
    from ser_pipeline.device import resolve_device, set_threads
    from ser_pipeline.features.runner import extract_corpus

    set_threads(threads)
    stats = extract_corpus(manifest, out, parse_spec(spec)["feature"], resolve_device(device))
    click.echo(json.dumps(stats))
