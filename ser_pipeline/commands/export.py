"""``export``: one model trained on all of a corpus, as a self-contained model folder."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("export")
@click.option("--spec", required=True, help="JSON built by ser_pipeline.config.export_spec")
@click.option("--threads", default=1, show_default=True)
def command(spec, threads):
    """Train one model on every utterance of a corpus and write its model folder."""
    from ser_pipeline.device import resolve_device, set_threads
    from ser_pipeline.training.export import run_export

    set_threads(threads)
    s = parse_spec(spec)
    s["device"] = resolve_device(s.get("device"))
    result = run_export(s)
    click.echo(f"exported {s['name']} to {s['model_dir']}: {result['n_train']} utterances; "
               f"{result['export']['epochs']}")
