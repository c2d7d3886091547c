"""Render systemd unit files that run a ChronosQ root's supervisor and workers.

systemd splits command lines and path lists on whitespace unless a word is in
double quotes, and it reads backslash escapes inside the quotes. It replaces
"%x" specifiers in every value written here, so "%%" is a literal "%", and it
expands "$NAME" in command arguments, so "$$" is a literal "$". A unit file
cannot hold a newline or control character, so paths with one are rejected.
`systemd-analyze verify` of systemd 252 accepts the output for paths with
spaces, quotes, "%" and "$" (tests/test_units.py runs it when it is installed).
"""

from __future__ import annotations

import math
from pathlib import Path

SERVICE_NAME = "chronosq.service"
WORKER_TEMPLATE_NAME = "chronosq-worker@.service"
WORKER_ENV_FILE = "/etc/chronosq/worker-%i.env"

# Seconds systemd waits beyond the supervisor's drain grace before it sends
# SIGKILL, so the supervisor's own SIGKILL of late children comes first.
STOP_TIMEOUT_MARGIN_SECONDS = 20
WORKER_STOP_TIMEOUT_SECONDS = 60
WATCHDOG_SECONDS = 30

def check_path(label: str, value: str) -> None:
    """Raise ValueError when `value` is not an absolute path a unit file can hold."""
    if not value.startswith("/"):
        raise ValueError(f"{label} {value!r} is not an absolute path; give the full path, "
                         "since systemd requires absolute paths here")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(f"{label} {value!r} contains a newline or control character, "
                         "which a unit file cannot hold; choose another path")


def check_program(python: str) -> None:
    """Raise ValueError when systemd would not accept `python` as an executable's path."""
    check_path("python", python)
    if any(char in python for char in "\"'\\"):
        raise ValueError(f"python {python!r} contains a quote or backslash, which systemd "
                         "rejects in an executable's path; give a symlink without them")


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


def exec_line(words: list[str]) -> str:
    """Quote a command line whose first word is the absolute path of the program."""
    program, *arguments = words
    if "$" in program:
        # systemd takes the program's path literally but expands "$" in every
        # argument, argv[0] included. The "@" prefix gives argv[0] separately.
        quoted = [quote("@" + program), quote_exec_word(program)]
    else:
        quoted = [quote(program)]
    return " ".join(quoted + [quote_exec_word(word) for word in arguments])


def format_seconds(seconds: float) -> str:
    """Format a duration in seconds the way systemd time spans accept it."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0")


def setting(key: str, value: str) -> str:
    """Return one "Key=value" line."""
    return f"{key}={value}"


def render(header: str, sections: dict[str, list[str]]) -> str:
    """Join a comment header and sections of lines into unit file text."""
    lines = [f"# {line}" for line in header.splitlines()]
    for name, entries in sections.items():
        lines += ["", f"[{name}]", *entries]
    return "\n".join(lines) + "\n"


def sandbox(root: str, writable: list[str]) -> list[str]:
    """Return the sandboxing settings shared by both units; `writable` lists the
    folders outside the root that the processes write to."""
    for folder in writable:
        check_path("writable folder", folder)
    return [
        setting("ProtectSystem", "strict"),
        setting("ProtectHome", "read-only"),
        setting("PrivateTmp", "yes"),
        setting("NoNewPrivileges", "yes"),
        setting("ReadWritePaths", " ".join(quote(path) for path in [root, *writable])),
        setting("Environment", quote(f"CHRONOSQ_ROOT={root}")),
    ]


def service_unit(root: Path, python: str, stop_grace_seconds: float = 10,
                 writable: list[str] | None = None) -> str:
    """Render chronosq.service, which runs the supervisor of `root` under systemd.

    `writable` lists folders outside the root the supervisor writes to, such as
    the metrics textfile's.
    """
    root_text, python = str(root), str(python)
    check_path("root", root_text)
    check_program(python)
    if not math.isfinite(stop_grace_seconds) or stop_grace_seconds < 0:
        raise ValueError(f"stop_grace_seconds {stop_grace_seconds!r} is invalid; "
                         "give supervisor.stop_grace_seconds, a number of seconds >= 0")
    command = [python, "-m", "chronosq", "supervise", "--root", root_text]
    grace = format_seconds(stop_grace_seconds)

    header = (f"{SERVICE_NAME}: the ChronosQ supervisor for {root_text}.\n"
              "Rendered by chronosq.units.service_unit; render it again after a change.")
    unit = [
        setting("Description", "ChronosQ supervisor for " + escape_specifiers(root_text)),
        setting("After", "local-fs.target"),
        "# systemd refuses a sixth start within 300 s, so a supervisor that keeps",
        "# failing stays down until `systemctl reset-failed chronosq`.",
        setting("StartLimitIntervalSec", "300"),
        setting("StartLimitBurst", "5"),
    ]

    service = [
        setting("Type", "notify"),
        setting("NotifyAccess", "main"),
        setting("ExecStart", exec_line(command)),
        "# SIGHUP makes the supervisor reread chronosq.toml and pass the signal on.",
        setting("ExecReload", "/bin/kill -HUP $MAINPID"),
        f"# systemd kills and restarts the supervisor when {WATCHDOG_SECONDS} s pass "
        "without WATCHDOG=1.",
        setting("WatchdogSec", str(WATCHDOG_SECONDS)),
        "# SIGTERM goes to the supervisor alone, which stops its children within",
        f"# supervisor.stop_grace_seconds ({grace} s). systemd sends SIGKILL to every",
        f"# process left {STOP_TIMEOUT_MARGIN_SECONDS} s after that.",
        setting("KillMode", "mixed"),
        setting("KillSignal", "SIGTERM"),
        setting("TimeoutStopSec",
                format_seconds(stop_grace_seconds + STOP_TIMEOUT_MARGIN_SECONDS)),
        setting("Restart", "on-failure"),
        setting("RestartSec", "2"),
        *sandbox(root_text, writable or []),
    ]

    install = [setting("WantedBy", "multi-user.target")]
    return render(header, {"Unit": unit, "Service": service, "Install": install})


def worker_template(root: Path, python: str, writable: list[str] | None = None) -> str:
    """Render chronosq-worker@.service, whose instance name is the worker id;
    `writable` lists folders outside the root the workers write to."""
    root_text, python = str(root), str(python)
    check_path("root", root_text)
    check_program(python)
    words = [python, "-m", "chronosq", "worker", "--root", root_text]
    command = exec_line(words)
    command += " --worker-id %i --type ${CHRONOSQ_TYPES} --handler ${CHRONOSQ_HANDLER}"

    header = (f"{WORKER_TEMPLATE_NAME}: a ChronosQ worker for {root_text}. The instance\n"
              "name is the worker id, as in chronosq-worker@w1.service.\n"
              "Rendered by chronosq.units.worker_template; render it again after a change.")
    unit = [
        setting("Description", "ChronosQ worker %i for " + escape_specifiers(root_text)),
        setting("PartOf", SERVICE_NAME),
        setting("After", SERVICE_NAME),
    ]

    service = [
        setting("Type", "exec"),
        f"# {WORKER_ENV_FILE} sets the worker's job type and handler, for example:",
        "#   CHRONOSQ_TYPES=email",
        "#   CHRONOSQ_HANDLER=myapp.jobs:send_email",
        "# ${CHRONOSQ_TYPES} becomes a single argument, so it names one job type.",
        "# The leading \"-\" lets the unit start without the file, but the worker then",
        "# exits with an error because --type and --handler are empty.",
        setting("EnvironmentFile", f"-{WORKER_ENV_FILE}"),
        setting("ExecStart", command),
        "# On SIGTERM the worker finishes its running job and hands back its queue.",
        setting("KillMode", "mixed"),
        setting("KillSignal", "SIGTERM"),
        setting("TimeoutStopSec", str(WORKER_STOP_TIMEOUT_SECONDS)),
        setting("Restart", "on-failure"),
        *sandbox(root_text, writable or []),
    ]

    install = [setting("WantedBy", SERVICE_NAME)]
    return render(header, {"Unit": unit, "Service": service, "Install": install})
