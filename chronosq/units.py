"""Render systemd unit files that run a ChronosQ root's supervisor and workers.

Values follow the quoting rules of systemd.service(5) and systemd.unit(5):
systemd splits command lines and path lists on whitespace unless a word is in
double quotes, reads backslash escapes inside the quotes, replaces "%x"
specifiers in every value written here ("%%" is a literal "%"), and expands
"$NAME" in command lines ("$$" is a literal "$"). Paths with a newline or
another control character cannot be written this way and are rejected.
"""

from __future__ import annotations

import math
from pathlib import Path

SERVICE_NAME = "chronosq.service"
WORKER_TEMPLATE_NAME = "chronosq-worker@.service"
WORKER_ENV_FILE = "/etc/chronosq/worker-%i.env"

# Seconds systemd waits after the supervisor's drain grace before it sends
# SIGKILL, so the supervisor can SIGKILL its own children first and log it.
STOP_TIMEOUT_MARGIN_SECONDS = 20
WORKER_STOP_TIMEOUT_SECONDS = 60
WATCHDOG_SECONDS = 30

Section = list[tuple[str, str]]


def check_path(label: str, value: str) -> None:
    """Raise ValueError when `value` is not an absolute path a unit file can hold."""
    if not value.startswith("/"):
        raise ValueError(f"{label} {value!r} is not an absolute path; give the full path, "
                         "since systemd requires absolute paths here")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(f"{label} {value!r} contains a newline or control character, "
                         "which a unit file cannot hold; choose another path")


def escape_specifiers(text: str) -> str:
    """Double each "%" so that systemd's specifier expansion leaves the text as it is."""
    return text.replace("%", "%%")


def needs_quotes(text: str) -> bool:
    """Return whether systemd would split or unescape `text` unless it is quoted."""
    return text == "" or any(char.isspace() or char in "\"'\\" for char in text)


def quote(text: str) -> str:
    """Quote one word of a path list or assignment, with specifiers escaped."""
    escaped = escape_specifiers(text)
    if not needs_quotes(text):
        return escaped
    inner = escaped.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{inner}"'


def quote_exec_word(text: str) -> str:
    """Quote one argument of a command line, with "$" escaped as well."""
    return quote(text).replace("$", "$$")


def format_seconds(seconds: float) -> str:
    """Format a duration in seconds the way systemd time spans accept it."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0")


def render(header: str, sections: list[tuple[str, Section]]) -> str:
    """Join a comment header and sections into unit file text."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for name, entries in sections:
        lines += ["", f"[{name}]"]
        for key, value in entries:
            lines.append(value if key == "#" else f"{key}={value}")
    return "\n".join(lines) + "\n"


def sandbox(root: str) -> Section:
    """Return the sandboxing settings shared by both units."""
    return [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ReadWritePaths", quote(root)),
        ("Environment", quote(f"CHRONOSQ_ROOT={root}")),
    ]


def service_unit(root: Path, python: str, stop_grace_seconds: float = 10) -> str:
    """Render chronosq.service, which runs the supervisor of `root` under systemd."""
    root_text, python = str(root), str(python)
    check_path("root", root_text)
    check_path("python", python)
    if not math.isfinite(stop_grace_seconds) or stop_grace_seconds < 0:
        raise ValueError(f"stop_grace_seconds {stop_grace_seconds!r} is invalid; "
                         "give supervisor.stop_grace_seconds, a number of seconds >= 0")
    command = [python, "-m", "chronosq", "supervise", "--root", root_text]
    header = (f"{SERVICE_NAME}: the ChronosQ supervisor for {root_text}.\n"
              "Rendered by chronosq.units.service_unit; render it again after a change.")
    unit: Section = [
        ("Description", escape_specifiers(f"ChronosQ supervisor for {root_text}")),
        ("After", "local-fs.target"),
        ("#", "# Five failed starts within 300 s stop the restarts until a manual start."),
        ("StartLimitIntervalSec", "300"),
        ("StartLimitBurst", "5"),
    ]
    service: Section = [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", " ".join(quote_exec_word(word) for word in command)),
        ("#", "# SIGHUP makes the supervisor reread chronosq.toml and pass the signal on."),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("#", f"# The supervisor sends WATCHDOG=1 every {WATCHDOG_SECONDS // 2} s."),
        ("WatchdogSec", str(WATCHDOG_SECONDS)),
        ("#", "# SIGTERM goes to the supervisor alone, which stops its children within"),
        ("#", f"# supervisor.stop_grace_seconds ({format_seconds(stop_grace_seconds)} s);"
              " systemd sends SIGKILL to all"),
        ("#", f"# that remain {STOP_TIMEOUT_MARGIN_SECONDS} s after that."),
        ("KillMode", "mixed"),
        ("KillSignal", "SIGTERM"),
        ("TimeoutStopSec",
         format_seconds(stop_grace_seconds + STOP_TIMEOUT_MARGIN_SECONDS)),
        ("Restart", "on-failure"),
        ("RestartSec", "2"),
        *sandbox(root_text),
    ]
    install: Section = [("WantedBy", "multi-user.target")]
    return render(header, [("Unit", unit), ("Service", service), ("Install", install)])


def worker_template(root: Path, python: str) -> str:
    """Render chronosq-worker@.service, whose instance name is the worker id."""
    root_text, python = str(root), str(python)
    check_path("root", root_text)
    check_path("python", python)
    command = " ".join(quote_exec_word(word) for word in
                       [python, "-m", "chronosq", "worker", "--root", root_text])
    command += " --worker-id %i --type ${CHRONOSQ_TYPES} --handler ${CHRONOSQ_HANDLER}"
    header = (f"{WORKER_TEMPLATE_NAME}: a ChronosQ worker for {root_text}; the instance name\n"
              "is the worker id, as in chronosq-worker@w1.service.\n"
              "Rendered by chronosq.units.worker_template; render it again after a change.")
    unit: Section = [
        ("Description", escape_specifiers(f"ChronosQ worker %i for {root_text}")
         .replace("%%i", "%i")),
        ("PartOf", SERVICE_NAME),
        ("After", SERVICE_NAME),
    ]
    service: Section = [
        ("Type", "exec"),
        ("#", f"# {WORKER_ENV_FILE} sets the worker's job type and handler, for example:"),
        ("#", "#   CHRONOSQ_TYPES=email"),
        ("#", "#   CHRONOSQ_HANDLER=myapp.jobs:send_email"),
        ("#", "# ${CHRONOSQ_TYPES} becomes a single argument, so it names one job type."),
        ("#", "# The leading \"-\" lets the unit start without the file, but the worker then"),
        ("#", "# exits at once because --type and --handler are empty."),
        ("EnvironmentFile", f"-{WORKER_ENV_FILE}"),
        ("ExecStart", command),
        ("#", "# On SIGTERM the worker finishes its running job and hands back its queue."),
        ("KillMode", "mixed"),
        ("KillSignal", "SIGTERM"),
        ("TimeoutStopSec", str(WORKER_STOP_TIMEOUT_SECONDS)),
        ("Restart", "on-failure"),
        *sandbox(root_text),
    ]
    install: Section = [("WantedBy", SERVICE_NAME)]
    return render(header, [("Unit", unit), ("Service", service), ("Install", install)])
