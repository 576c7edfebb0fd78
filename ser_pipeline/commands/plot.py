"""``plot``: scaling curve or confusion matrices of an experiment."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("plot")
@click.option("--spec", required=True)
@click.option("--kind", type=click.Choice(["scaling", "confusion", "speakers"]), required=True)
@click.option("--out", "outs", multiple=True, required=True, type=click.Path())
@click.argument("runs", nargs=-1, type=click.Path(exists=True))
def command(spec, kind, outs, runs):
    """Scaling curve (PNG + SVG), confusion matrices or per-speaker UA (PNG) of an experiment."""
    from ser_pipeline.reporting.plots import confusion_plot, scaling_plot, speaker_plot
    from ser_pipeline.reporting.tables import load_runs

    s = parse_spec(spec)
    loaded = load_runs(list(runs))
    if kind == "scaling":
        scaling_plot(s["name"], s["experiment"], loaded, *outs)
    elif kind == "speakers":
        speaker_plot(s["name"], s["experiment"], loaded, outs[0], outs[1] if len(outs) > 1 else None)
    else:
        confusion_plot(s["experiment"], loaded, outs[0])
    click.echo(f"wrote {', '.join(outs)}")
