"""`init`, `submit` and `supervise`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from chronosq import config as config_module
from chronosq import fileops
from chronosq.cli.common import RootOption, find_root, handle_errors, load_config
from chronosq.defaults import DEFAULT_PRIORITY, PRIORITIES
from chronosq.errors import InvalidEventError
from chronosq.events import parse_event
from chronosq.layout import Root
from chronosq.lifecycle import new_job_id, utc_now
from chronosq.supervisor import supervise as run_supervisor


@handle_errors
def init(root: RootOption = None) -> None:
    """Create the folders and a commented default chronosq.toml; existing files are kept."""
    found = find_root(root)
    found.make_folders()
    written = config_module.write_default(found.config_path)
    config_module.load(found)
    verb = "created" if written else "kept existing"
    typer.echo(f"initialised {found.path} ({verb} {found.config_path.name})")


@handle_errors
def submit(
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="Job type, e.g. email.")],
    payload: Annotated[
        str, typer.Option("--payload", help="Job payload as a JSON object.")
    ] = "{}",
    priority: Annotated[
        str,
        typer.Option("--priority", help=f"Job priority: {', '.join(PRIORITIES)}."),
    ] = DEFAULT_PRIORITY,
    job_id: Annotated[
        str | None,
        typer.Option("--job-id", help="Job id to use instead of a generated one."),
    ] = None,
    meta: Annotated[
        str | None,
        typer.Option("--meta", help="Producer metadata kept with the job, as a JSON object."),
    ] = None,
    root: RootOption = None,
) -> None:
    """Write an event into input/ atomically and print its job id."""
    found = find_root(root).require()
    config = load_config(found)
    try:
        decoded = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise InvalidEventError(
            f"invalid --payload {payload!r}: {exc.msg}; pass a JSON object such as '{{}}'"
        ) from None
    event = {
        "job_id": job_id if job_id is not None else new_job_id(),
        "type": job_type,
        "payload": decoded,
        "priority": priority,
        "created_at": utc_now(),
    }
    if meta is not None:
        try:
            event["meta"] = json.loads(meta)
        except json.JSONDecodeError as exc:
            raise InvalidEventError(
                f"invalid --meta {meta!r}: {exc.msg}; pass a JSON object") from None
    data = fileops.dumps(event)
    digest = parse_event(f"{event['job_id']}.json", data, 0, event["created_at"])["event_digest"]
    target = found.input / f"{event['job_id']}.json"
    earlier = earlier_digest(found, event["job_id"], target)
    if earlier is not None:
        where, earlier_value = earlier
        if earlier_value != digest:
            raise InvalidEventError(
                f"job id {event['job_id']!r} is already {where} with another type, payload, "
                "priority or meta; choose another --job-id"
            )
        # Resubmitting the same job is how a producer retries safely.
        typer.echo(f"job id {event['job_id']!r} is already {where} with the same content; "
                   "nothing submitted", err=True)
        typer.echo(event["job_id"])
        return
    fileops.write_bytes(target, data, durable=config.durable)
    typer.echo(event["job_id"])


def earlier_digest(root: Root, job_id: str, event_path: Path) -> tuple[str, str | None] | None:
    """Return where a job id is already taken (accepted, or waiting in input/) and
    the content digest found there, or None when the id is free."""
    try:
        record = fileops.read_json(root.state_path(job_id))
        return "accepted", record.get("event_digest") if isinstance(record, dict) else None
    except FileNotFoundError:
        pass
    except ValueError:
        return "accepted", None
    try:
        waiting = parse_event(event_path.name, fileops.read_bytes(event_path), 0, utc_now())
        return "waiting in input/", waiting["event_digest"]
    except FileNotFoundError:
        return None
    except (ValueError, InvalidEventError):
        return "waiting in input/", None


@handle_errors
def supervise(root: RootOption = None) -> None:
    """Run ingest, scheduler and recovery in the foreground until SIGTERM or Ctrl-C."""
    raise typer.Exit(run_supervisor(find_root(root)))


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(submit)
    app.command()(supervise)
