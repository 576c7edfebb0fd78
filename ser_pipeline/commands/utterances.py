"""``utterances``: the manifest rows any experiment on a corpus uses."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("utterances")
@click.option("--manifest", required=True, type=click.Path(exists=True))
@click.option("--spec", required=True, help="JSON: {corpus, label_specs}")
@click.option("--out", required=True, type=click.Path())
def command(manifest, spec, out):
    """Keep the manifest rows some protocol's label set uses: features are extracted for those."""
    from ser_pipeline.corpora.prepare import used_utterances

    s = parse_spec(spec)
    click.echo(used_utterances(manifest, s["label_specs"], out, keep_all=bool(s.get("all"))))
