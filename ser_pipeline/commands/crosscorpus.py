"""``crosscorpus``: one fold model scored on another corpus."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("crosscorpus")
@click.option("--spec", required=True, help="JSON built by ser_pipeline.config.crosscorpus_spec")
@click.option("--out", required=True, type=click.Path())
def command(spec, out):
    """Apply a trained fold model to another corpus and score it by the experiment's rule."""
    from ser_pipeline.atomic import write_json
    from ser_pipeline.crosscorpus import evaluate

    result = evaluate(parse_spec(spec))
    write_json(out, result)
    click.echo(f"{result['model']} {result['fold']} on {result['eval_corpus']}: accuracy "
               f"{100 * result['metrics']['accuracy']:.1f} over {result['n']} utterances")
