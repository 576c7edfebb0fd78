"""``train``: one (model, fold, data size, seed) job."""
from __future__ import annotations

import click

from ser_pipeline.cli import parse_spec


@click.command("train")
@click.option("--spec", required=True, help="JSON built by ser_pipeline.config.train_spec")
@click.option("--out", required=True, type=click.Path(), help="result JSON")
@click.option("--model-dir", default=None, type=click.Path(), help="folder for the trained model")
@click.option("--threads", default=1, show_default=True)
def command(spec, out, model_dir, threads):
    """Train and test one (model, fold, data size, seed); write the result JSON and the model."""
    from ser_pipeline.atomic import write_json
    from ser_pipeline.device import resolve_device, set_threads
    from ser_pipeline.training.loop import run_training

    set_threads(threads)
    s = parse_spec(spec)
    s["device"] = resolve_device(s.get("device"))
    if model_dir:
        s["model_dir"] = model_dir
    result = run_training(s)
    write_json(out, result)
    m = result["metrics"]
    click.echo(f"{s['model_name']} {s['fold']} n={s['size']} seed={s['seed']}: "
               f"UA {100 * m['UA']:.1f}  WA {100 * m['WA']:.1f}  ({result['wall_seconds']} s on {s['device']})")
