"""`chronosq systemd` and `chronosq metrics`: deployment helpers for one root."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from chronosq import config as config_module
from chronosq import fileops, metrics, units
from chronosq import status as status_module
from chronosq.cli.common import RootOption, find_root, handle_errors, load_config
from chronosq.errors import ConfigError
from chronosq.layout import Root


def outside_folders(root: Root, files: list[str]) -> list[str]:
    """Return the folders of configured files that lie outside the root."""
    folders = []
    for name in files:
        if name:
            folder = (root.path / name).parent
            if not folder.is_relative_to(root.path):
                folders.append(str(folder))
    return folders


@handle_errors
def systemd(
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", help="Write chronosq.service and chronosq-worker@.service "
        "into this folder instead of printing them.")] = None,
    python: Annotated[str, typer.Option("--python", help="Python interpreter the units run; "
                                        "defaults to the one running this command.")]
    = sys.executable,
    root: RootOption = None,
) -> None:
    """Print a Type=notify service for this root and a chronosq-worker@ template."""
    found = find_root(root).require()
    config = config_module.load(found)
    log_folders = outside_folders(found, [str(config.get("logging", "file"))])
    metrics_folders = outside_folders(found, [str(config.get("metrics", "textfile"))])
    try:
        service = units.service_unit(found.path, python,
                                     float(config.get("supervisor", "stop_grace_seconds")),
                                     writable=sorted({*log_folders, *metrics_folders}))
        worker = units.worker_template(found.path, python, writable=log_folders)
    except ValueError as exc:
        raise ConfigError(f"cannot write units: {exc}") from None
    for label, path in (("root", str(found.path)), ("python", python)):
        if path == "/tmp" or path.startswith(("/tmp/", "/var/tmp/")):
            typer.echo(f"warning: the {label} {path} is under /tmp, which PrivateTmp=yes "
                       "hides from the service; move it or drop PrivateTmp", err=True)
    if output_dir is None:
        typer.echo("# chronosq.service\n" + service + "\n# chronosq-worker@.service\n" + worker)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("chronosq.service", service), ("chronosq-worker@.service", worker)):
        fileops.write_bytes(output_dir / name, text.encode(), durable=True)
        typer.echo(str(output_dir / name))


@handle_errors
def metrics_command(
    output: Annotated[Path | None, typer.Option(
        "--output", help="Write the metrics to this file atomically instead of printing.")]
    = None,
    root: RootOption = None,
) -> None:
    """Print the Prometheus metrics of this root once (the supervisor rewrites
    [metrics] textfile on its own)."""
    found = find_root(root).require()
    data = status_module.gather(found, load_config(found))
    try:
        counters = fileops.read_json(found.run / "counters.json")
    except (OSError, ValueError):
        counters = {}
    text = metrics.render(data, counters)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        metrics.write_textfile(output, text)


def register(app: typer.Typer) -> None:
    app.command()(systemd)
    app.command("metrics")(metrics_command)
