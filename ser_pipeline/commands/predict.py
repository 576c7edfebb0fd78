"""``predict``: a trained model on new recordings."""
from __future__ import annotations

import click


@click.command("predict")
@click.option("--model", "model", required=True, type=click.Path(exists=True),
              help="a model folder (results/models/..., results/export/...) or a run's result JSON")
@click.option("--out", default=None, type=click.Path(), help="CSV to write (default: print)")
@click.option("--window", default=None, type=float, help="cut long recordings into windows of this many seconds")
@click.option("--hop", default=None, type=float, help="seconds between window starts (default: the window)")
@click.option("--device", default="auto", show_default=True)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
def command(model, out, window, hop, device, inputs):
    """Predict the emotion of audio files (or of the files a CSV lists), one row per file or window."""
    import json
    from pathlib import Path

    from ser_pipeline.atomic import write_text
    from ser_pipeline.device import resolve_device
    from ser_pipeline.predict import predict

    path = Path(model)
    if path.is_file():
        run = json.loads(path.read_text())
        if not run.get("model_dir"):
            raise click.BadParameter(f"{path}: this result file names no saved model folder")
        path = Path(run["model_dir"])
    df = predict(path, list(inputs), window, hop, resolve_device(device))
    text = df.to_csv(index=False)
    if out:
        write_text(out, text)
        click.echo(f"wrote {len(df)} rows to {out}")
    else:
        click.echo(text, nl=False)
