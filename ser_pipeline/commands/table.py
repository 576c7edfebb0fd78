"""``table``: an experiment's table beside the paper's numbers."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("table")
@click.option("--spec", required=True, help="JSON: {name, experiment}")
@click.option("--out-md", required=True, type=click.Path())
@click.option("--out-csv", required=True, type=click.Path())
@click.argument("runs", nargs=-1, type=click.Path(exists=True))
def command(spec, out_md, out_csv, runs):
    """Aggregate run JSONs into a Markdown + CSV table beside the paper's numbers."""
    from ser_pipeline.reporting.tables import write_table

    s = parse_spec(spec)
    click.echo(write_table(s["name"], s["experiment"], list(runs), out_md, out_csv, s.get("corpus_info", "")))
