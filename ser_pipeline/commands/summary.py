"""``summary``: every experiment table in one Markdown file."""
from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("summary")
@click.option("--out", required=True, type=click.Path())
@click.option("--spec", default="{}", help="JSON (its digest decides reruns)")
@click.argument("tables", nargs=-1, type=click.Path(exists=True))
def command(out, spec, tables):
    """Concatenate every experiment table into one Markdown summary."""
    import json

    from ser_pipeline.atomic import write_text

    parts = [f"# ser_pipeline results\n\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S')}.\n"]
    audits = json.loads(spec).get("audits") or {}
    if audits:
        lines = ["## Audio audit (manifest stage)", ""]
        for corpus, path in sorted(audits.items()):
            p = Path(path)
            n = max(0, len(p.read_text().splitlines()) - 1) if p.is_file() else None
            lines.append(f"- {corpus}: " + ("no audit report found" if n is None else
                                            f"{n} warning(s), listed in `{path}`" if n else "no finding"))
        parts.append("\n".join(lines) + "\n")
    parts += [Path(t).read_text() for t in tables if t.endswith(".md")]
    write_text(out, "\n\n".join(parts))
    click.echo(f"wrote {out}")
