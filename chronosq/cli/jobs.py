"""`chronosq jobs ...`, `explain`, and the commands people use to work a queue."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chronosq import fileops, logs
from chronosq.cli.common import RootOption, find_root, handle_errors, load_config, print_json
from chronosq.control import Control
from chronosq.errors import InvalidEventError
from chronosq.joblist import list_jobs
from chronosq.lifecycle import State

jobs_app = typer.Typer(help="List, inspect and act on single jobs.", no_args_is_help=True)

ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why, recorded in the job's history.")
]
JobIdArgument = Annotated[str, typer.Argument(metavar="ID", help="Job id.")]
STATE_NAMES = ", ".join(s.value for s in State)


def control(root: Any, reason: str | None = None) -> Control:
    """Return the actions on the root, logging to its JSON log as the operator."""
    found = find_root(root).require()
    config = load_config(found)
    logs.setup(found, "operator", config.get("logging", "level"),
               config.get("logging", "file"), False)
    return Control(found, config, reason)


@jobs_app.command("list")
@handle_errors
def list_command(
    state: Annotated[str | None, typer.Option("--state", help=f"Only jobs in this state: "
                                              f"{STATE_NAMES}.")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
    worker: Annotated[str | None, typer.Option("--worker", help="Only jobs this worker "
                                               "has or had.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to show at most.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
    root: RootOption = None,
) -> None:
    """List jobs with their state, type, worker and age, oldest first."""
    if state is not None and state not in {s.value for s in State}:
        raise InvalidEventError(f"invalid --state {state!r}; valid: {STATE_NAMES}")
    found = find_root(root).require()
    rows = list_jobs(found, state=state, job_type=job_type, worker=worker, limit=limit)
    if as_json:
        print_json(rows)
        return
    title = f"the first {limit} jobs; raise --limit for more" if len(rows) == limit else \
        f"{len(rows)} jobs"
    table = Table(title=title)
    # Ids stay on one line so they can be copied whole; other columns fold.
    table.add_column("job", no_wrap=True)
    for column in ("state", "type", "priority", "worker", "attempts", "created"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["job_id"], row["state"], row["type"], row["priority"],
                      row["worker_id"] or "-", str(row["attempts"]), row["created_at"])
    Console().print(table)


@jobs_app.command("show")
@handle_errors
def show(job_id: JobIdArgument, as_json: Annotated[bool, typer.Option(
        "--json", help="Print the job and its state record as JSON.")] = False,
         root: RootOption = None) -> None:
    """Show a job, its history as a timeline, and its result or error."""
    actions = control(root)
    where = actions.find(job_id)
    job = fileops.read_json(where.path)
    record = actions.lifecycle.read_state(job_id) or {}
    if as_json:
        print_json({"state": where.state.value, "path": str(where.path), "job": job,
                    "record": record})
        return
    console = Console()
    console.print(f"[bold]{job_id}[/bold]  {where.state.value}  type={job.get('type')}  "
                  f"priority={job.get('priority')}  attempts={record.get('attempts')}"
                  f"/{record.get('max_attempts')}")
    console.print(f"file: {where.path}")
    console.print(f"payload: {json.dumps(job.get('payload'))}")
    timeline = Table(title="history")
    for column in ("at", "event", "state", "by", "worker", "detail"):
        timeline.add_column(column, overflow="fold")
    for entry in record.get("history", []):
        detail = entry.get("error") or entry.get("reason") or ""
        operator = entry.get("operator")
        by = f"{operator['user']}@{operator['host']}" if operator else entry.get("by", "")
        timeline.add_row(entry.get("at", ""), entry.get("event", ""), entry.get("state", ""),
                         by, entry.get("worker_id", ""), str(detail))
    console.print(timeline)
    if "result" in job:
        console.print(f"result: {json.dumps(job['result'])}")
    if record.get("last_error"):
        console.print(f"last error: {record['last_error']}")


def act(verb: str, job_id: str, reason: str | None, root: Any, **kwargs: Any) -> None:
    actions = control(root, reason)
    state = getattr(actions, verb)(job_id, **kwargs)
    if verb == "cancel" and state is State.PROCESSING:
        typer.echo(f"{job_id}: processing; cancel requested, the worker stops it")
        return
    typer.echo(f"{job_id}: {state.value}")


@jobs_app.command("hold")
@handle_errors
def hold(job_id: JobIdArgument, reason: ReasonOption = None, root: RootOption = None) -> None:
    """Park a pending or queued job in hold/ until it is released."""
    act("hold", job_id, reason, root)


@jobs_app.command("release")
@handle_errors
def release(job_id: JobIdArgument, reason: ReasonOption = None,
            root: RootOption = None) -> None:
    """Return a held job to pending."""
    act("release", job_id, reason, root)


@jobs_app.command("retry")
@handle_errors
def retry(job_id: JobIdArgument, reason: ReasonOption = None, root: RootOption = None) -> None:
    """Run a failed, quarantined or canceled job again, with its attempts reset, or
    run a job waiting for its retry time now."""
    act("retry", job_id, reason, root)


@jobs_app.command("cancel")
@handle_errors
def cancel(
    job_id: JobIdArgument,
    reason: ReasonOption = None,
    grace: Annotated[float, typer.Option("--grace", min=0, help="Seconds a running job "
                                         "gets to stop before its worker is killed.")] = 10.0,
    root: RootOption = None,
) -> None:
    """Cancel a queued job now, or ask the worker of a running one to stop it."""
    act("cancel", job_id, reason, root, grace_seconds=grace)


@handle_errors
def explain(job_id: JobIdArgument, root: RootOption = None) -> None:
    """Say where a job is and why: held, waiting to retry, no live worker, ..."""
    typer.echo(control(root).explain(job_id))


@handle_errors
def take(
    worker_id: Annotated[str, typer.Option("--worker-id", help="Your worker id, e.g. "
                                           "alice.")],
    job_type: Annotated[str | None, typer.Option("--type", help="Only a job of this "
                                                 "type.")] = None,
    root: RootOption = None,
) -> None:
    """Claim the next pending job for a person and print it as JSON."""
    job = control(root).take(worker_id, job_type)
    if job is None:
        typer.echo("no pending job to take", err=True)
        raise typer.Exit(3)
    print_json(job)


@handle_errors
def done(
    job_id: JobIdArgument,
    result: Annotated[str, typer.Option("--result", help="Result as JSON.")] = "null",
    root: RootOption = None,
) -> None:
    """Finish a job you took, with an optional JSON result."""
    try:
        value = json.loads(result)
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"invalid --result {result!r}: {exc.msg}; pass JSON") from None
    control(root).finish(job_id, result=value)
    typer.echo(f"{job_id}: success recorded; recovery moves the job to output/")


@handle_errors
def fail(
    job_id: JobIdArgument,
    error: Annotated[str, typer.Option("--error", help="What went wrong.")],
    root: RootOption = None,
) -> None:
    """Fail a job you took; it is retried until its attempts are spent."""
    record = control(root).finish(job_id, error=error)
    attempts, limit = record.get("attempts"), record.get("max_attempts")
    if isinstance(attempts, int) and isinstance(limit, int) and attempts < limit:
        then = f"it is retried (attempt {attempts} of {limit})"
    else:
        then = "its attempts are spent, so recovery moves it to error/"
    typer.echo(f"{job_id}: failure recorded; {then}")


@handle_errors
def hold_taken(job_id: JobIdArgument, reason: ReasonOption = None,
               root: RootOption = None) -> None:
    """Put a job you took (or any pending job) on hold."""
    act("hold", job_id, reason, root)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.command()(explain)
    app.command()(take)
    app.command()(done)
    app.command()(fail)
    app.command("hold")(hold_taken)

