"""``download``: an open corpus into its folder, verified, then a done-marker."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("download")
@click.option("--spec", required=True, help="JSON: {corpus, loader, target, options}")
@click.option("--marker", required=True, type=click.Path(), help="done-marker written when complete")
def command(spec, marker):
    """Download and verify an open corpus (resumable; checksums from the corpus module)."""
    import json

    from ser_pipeline.atomic import write_text
    from ser_pipeline.download import download_corpus

    s = parse_spec(spec)
    root = download_corpus(s["loader"], s["target"], **(s.get("options") or {}))
    write_text(marker, json.dumps({"corpus": s["corpus"], "root": str(root)}) + "\n")
    click.echo(f"{s['corpus']} ready in {root}")
