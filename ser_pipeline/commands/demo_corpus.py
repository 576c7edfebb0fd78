"""``demo-corpus``: generate a built-in demo corpus in a real corpus layout."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("demo-corpus")
@click.option("--spec", required=True, help="JSON: {loader, out, params}")
def command(spec):
    """Generate a built-in offline demo corpus in the layout its loader reads."""
    from ser_pipeline.corpora import demo_function

    s = parse_spec(spec)
    root = demo_function(s["loader"])(s["out"], **(s.get("params") or {}))
    click.echo(f"demo corpus ready: {root}")
