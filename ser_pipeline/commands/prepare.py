"""``prepare``: read a corpus into the manifest and report what it holds."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("prepare")
@click.option("--spec", required=True, help="JSON: {corpus, loader, path, options}")
@click.option("--out", required=True, type=click.Path(), help="manifest CSV to write")
@click.option("--audit-report", default=None, type=click.Path(), help="CSV of the audio audit's findings")
def command(spec, out, audit_report):
    """Read a corpus into the manifest (every labelled utterance) and report it."""
    from ser_pipeline.corpora.prepare import prepare_manifest

    s = parse_spec(spec)
    click.echo(prepare_manifest(s["loader"], s["path"], s["corpus"], s.get("options") or {}, out, s.get("demo"),
                                s.get("audit"), audit_report))
