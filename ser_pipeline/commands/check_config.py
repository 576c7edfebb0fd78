"""``check-config``: validate a config file before anything runs."""
from __future__ import annotations

import click


@click.command("check-config")
@click.argument("path", type=click.Path())
@click.option("--deep/--no-deep", default=True, show_default=True,
              help="also build every model and check its training options (imports torch)")
def command(path, deep):
    """Validate a config file against the schema, its cross-references and (deep) every model."""
    from ser_pipeline.config import all_outputs, load_config

    cfg = load_config(path)
    if deep:
        from ser_pipeline.preflight import check_models

        check_models(cfg, source=str(path))
    click.echo(f"{path}: valid; {len(all_outputs(cfg))} final outputs")
