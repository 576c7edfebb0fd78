"""``folds``: write a protocol's fold file."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("folds")
@click.option("--manifest", required=True, type=click.Path(exists=True))
@click.option("--spec", required=True, help="JSON: {corpus, protocol, protocol_spec, expected_folds}")
@click.option("--out", required=True, type=click.Path())
def command(manifest, spec, out):
    """Write a protocol's fold file, refusing leakage, empty parts and empty classes."""
    from ser_pipeline.manifest import read_manifest
    from ser_pipeline.protocols.folds import summarise_folds, write_fold_file

    s = parse_spec(spec)
    doc = write_fold_file(read_manifest(manifest), s["protocol_spec"], out, s["corpus"], s["protocol"],
                          expected_folds=s.get("expected_folds"))
    click.echo(summarise_folds(doc))
