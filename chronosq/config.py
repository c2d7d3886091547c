"""Read, validate and write chronosq.toml.

Every key is checked against SCHEMA before any process starts; an unknown key or a
bad value raises ConfigError naming the key and what is allowed.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from chronosq import defaults
from chronosq import fileops
from chronosq.errors import ConfigError, InvalidNameError
from chronosq.layout import Root, validate_type

# section -> key -> (allowed types, default, comment written by `init`)
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any, str]]] = {
    "storage": {
        "durable": (
            (bool,),
            defaults.DURABLE,
            "fsync files before their rename and folders after it",
        ),
    },
    "ingest": {
        "rescan_seconds": (
            (int, float),
            defaults.INGEST_RESCAN_SECONDS,
            "seconds between full scans of input/ besides file notifications",
        ),
        "max_event_bytes": (
            (int,),
            defaults.MAX_EVENT_BYTES,
            "larger events are set aside in error/",
        ),
        "min_free_bytes": (
            (int,),
            defaults.MIN_FREE_BYTES,
            "ingest pauses while the root's filesystem has less free space",
        ),
    },
    "scheduler": {
        "rescan_seconds": (
            (int, float),
            defaults.SCHEDULER_RESCAN_SECONDS,
            "seconds between full scans of jobs/ besides file notifications",
        ),
        "worker_stale_seconds": (
            (int, float),
            defaults.WORKER_STALE_SECONDS,
            "a worker silent this long is offered no new jobs",
        ),
        "policy_timeout_seconds": (
            (int, float),
            defaults.POLICY_TIMEOUT_SECONDS,
            "a policy call taking longer fails and its job stays pending",
        ),
        "policy_error_backoff_seconds": (
            (int, float),
            defaults.POLICY_ERROR_BACKOFF_SECONDS,
            "first pause of a type whose policy failed; doubles up to 30 s",
        ),
    },
    "recovery": {
        "interval_seconds": (
            (int, float),
            defaults.RECOVERY_INTERVAL_SECONDS,
            "seconds between checks for dead workers and expired claims",
        ),
    },
    "supervisor": {
        "stop_grace_seconds": (
            (int, float),
            defaults.SUPERVISOR_STOP_GRACE_SECONDS,
            "seconds children get to exit after SIGTERM before SIGKILL",
        ),
        "restart_backoff_min_seconds": (
            (int, float),
            defaults.RESTART_BACKOFF_MIN_SECONDS,
            "first delay before restarting a dead child; doubles per restart",
        ),
        "restart_backoff_max_seconds": (
            (int, float),
            defaults.RESTART_BACKOFF_MAX_SECONDS,
            "longest delay before restarting a dead child",
        ),
        "restart_stable_seconds": (
            (int, float),
            defaults.RESTART_STABLE_SECONDS,
            "a child up this long has its backoff reset",
        ),
        "hung_seconds": (
            (int, float),
            defaults.CHILD_HUNG_SECONDS,
            "a child showing no progress this long stops the systemd watchdog pings",
        ),
    },
    "worker": {
        "heartbeat_seconds": (
            (int, float),
            defaults.WORKER_HEARTBEAT_SECONDS,
            "seconds between worker heartbeats and claim refreshes",
        ),
        "capacity": (
            (int,),
            defaults.WORKER_CAPACITY,
            "default number of queued plus running jobs per worker",
        ),
        "stop_grace_seconds": (
            (int, float),
            defaults.WORKER_STOP_GRACE_SECONDS,
            "seconds a command gets to finish after SIGTERM before it is killed",
        ),
        "max_result_bytes": (
            (int,),
            defaults.MAX_RESULT_BYTES,
            "a larger result (or command stdout) fails the job",
        ),
    },
    "logging": {
        "level": ((str,), defaults.LOG_LEVEL, "DEBUG, INFO, WARNING or ERROR"),
        "file": ((str,), defaults.LOG_FILE,
                 "JSON log, relative to the root; empty to log to standard error only"),
        "stderr": ((bool,), False,
                   "also write the JSON log to standard error, which systemd sends to "
                   "the journal"),
    },
    "metrics": {
        "textfile": (
            (str,),
            "",
            "Prometheus textfile-collector file the supervisor rewrites; empty for none",
        ),
        "interval_seconds": (
            (int, float),
            defaults.METRICS_INTERVAL_SECONDS,
            "seconds between rewrites of the metrics file and systemd STATUS= lines",
        ),
    },
    "plugins": {
        "modules": (
            (list,),
            [],
            "extra policy plugins: module names or .py paths relative to the root",
        ),
    },
    "defaults": {
        "policy": (
            (str,),
            defaults.DEFAULT_POLICY,
            "assignment policy of types without their own",
        ),
        "max_attempts": (
            (int,),
            defaults.MAX_ATTEMPTS,
            "executions before a job ends in error/",
        ),
        "timeout": (
            (int, float),
            defaults.CLAIM_TIMEOUT_SECONDS,
            "seconds a claim may go without a heartbeat",
        ),
        "person_timeout": (
            (int, float),
            defaults.PERSON_TIMEOUT_SECONDS,
            "seconds a job taken by a person may stay open before it is requeued",
        ),
        "max_crashes": (
            (int,),
            defaults.MAX_CRASHES,
            "worker deaths while running a job before it goes to quarantine/",
        ),
        "retry_backoff_seconds": (
            (int, float),
            defaults.RETRY_BACKOFF_SECONDS,
            "delay before the first retry of a failed job; doubles per attempt",
        ),
        "retry_backoff_max_seconds": (
            (int, float),
            defaults.RETRY_BACKOFF_MAX_SECONDS,
            "longest delay between retries (each delay is jittered down to half)",
        ),
    },
}

TYPE_KEYS: dict[str, tuple[type, ...]] = {
    "policy": (str,),
    "max_attempts": (int,),
    "timeout": (int, float),
    "max_crashes": (int,),
    "person_timeout": (int, float),
    "retry_backoff_seconds": (int, float),
    "retry_backoff_max_seconds": (int, float),
    "weights": (dict,),
    "rules": (list,),
    "fallback": (str,),
    "options": (dict,),
}

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class TypeConfig:
    """Settings of one job type, with the defaults filled in."""

    policy: str
    max_attempts: int
    timeout: float
    max_crashes: int
    person_timeout: float
    retry_backoff_seconds: float
    retry_backoff_max_seconds: float
    options: dict[str, Any] = field(default_factory=dict)


# Under run/: the text of chronosq.toml the supervisor last accepted, which its
# children read when they restart.
ACTIVE_CONFIG_NAME = "active-config.toml"


@dataclass(frozen=True)
class Config:
    """A validated chronosq.toml."""

    sections: dict[str, dict[str, Any]]
    types: dict[str, dict[str, Any]]
    # The file's text as read and validated, so the supervisor can keep exactly
    # that text even when the file changes afterwards.
    text: str = ""

    def get(self, section: str, key: str) -> Any:
        return self.sections[section][key]

    @property
    def durable(self) -> bool:
        return bool(self.sections["storage"]["durable"])

    def for_type(self, job_type: str) -> TypeConfig:
        """Return the settings of `job_type`, falling back to [defaults]."""
        table = self.types.get(job_type, {})
        base = self.sections["defaults"]

        def setting(key: str) -> Any:
            return table.get(key, base[key])

        return TypeConfig(
            policy=setting("policy"),
            max_attempts=setting("max_attempts"),
            timeout=float(setting("timeout")),
            max_crashes=setting("max_crashes"),
            person_timeout=float(setting("person_timeout")),
            retry_backoff_seconds=float(setting("retry_backoff_seconds")),
            retry_backoff_max_seconds=float(setting("retry_backoff_max_seconds")),
            options={key: value for key, value in table.items() if key not in base},
        )

    def policy_names(self) -> set[str]:
        """Return every policy name the configuration uses."""
        names = {self.sections["defaults"]["policy"]}
        names.update(t["policy"] for t in self.types.values() if "policy" in t)
        names.update(t["fallback"] for t in self.types.values() if "fallback" in t)
        return names


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_value(key: str, value: Any, allowed: tuple[type, ...]) -> None:
    # bool is an int subclass; a number key given true/false is an error.
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    else:
        ok = isinstance(value, allowed)
    if not ok:
        names = " or ".join(t.__name__ for t in allowed)
        raise ConfigError(f"{key}: expected {names}, got {_type_name(value)} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number of seconds, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
        raise ConfigError(f"{key}: must be greater than 0, got {value!r}")


def _parse_sections(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}]: expected a table, got {table!r}")
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise ConfigError(
                f"{section}.{unknown[0]}: unknown key; valid keys: {', '.join(keys)}"
            )
        values = {}
        for key, (allowed, default, _comment) in keys.items():
            value = table.get(key, default)
            _check_value(f"{section}.{key}", value, allowed)
            values[key] = value
        sections[section] = values
    level = sections["logging"]["level"]
    modules = sections["plugins"]["modules"]
    if not all(isinstance(item, str) and item for item in modules):
        raise ConfigError(f"plugins.modules: expected a list of strings, got {modules!r}")
    if level.upper() not in _LOG_LEVELS:
        raise ConfigError(
            f"logging.level: invalid value {level!r}; valid: {', '.join(_LOG_LEVELS)}"
        )
    return sections


def _parse_types(data: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(data, dict):
        raise ConfigError(f"[types]: expected a table of job types, got {data!r}")
    types: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        try:
            validate_type(name)
        except InvalidNameError as exc:
            raise ConfigError(f"types.{name}: {exc}") from None
        if not isinstance(table, dict):
            raise ConfigError(f"types.{name}: expected a table, got {table!r}")
        for key, value in table.items():
            if key not in TYPE_KEYS:
                raise ConfigError(
                    f"types.{name}.{key}: unknown key; valid keys: {', '.join(TYPE_KEYS)}"
                )
            _check_value(f"types.{name}.{key}", value, TYPE_KEYS[key])
        types[name] = dict(table)
    return types


def parse(data: dict[str, Any]) -> Config:
    """Validate a decoded chronosq.toml and return it with defaults filled in."""
    known = set(SCHEMA) | {"types"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: unknown section; valid sections: {', '.join(sorted(known))}"
        )
    config = Config(_parse_sections(data), _parse_types(data.get("types", {})))
    _check_timeouts(config)
    return config


def _check_timeouts(config: Config) -> None:
    """Reject claim timeouts a healthy worker's heartbeat could not keep up with."""
    heartbeat = float(config.get("worker", "heartbeat_seconds"))
    keys = {"defaults.timeout": float(config.get("defaults", "timeout"))}
    for name, table in config.types.items():
        if "timeout" in table:
            keys[f"types.{name}.timeout"] = float(table["timeout"])
    for key, timeout in keys.items():
        if timeout < 2 * heartbeat:
            raise ConfigError(
                f"{key}: {timeout:g}s is under twice worker.heartbeat_seconds "
                f"({heartbeat:g}s), so healthy claims would expire; raise it"
            )


def load(root: Root, path: Path | None = None) -> Config:
    """Read and validate the root's chronosq.toml, or the file at `path`."""
    root.require()
    path = path or root.config_path
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return replace(parse(data), text=text)


def default_text() -> str:
    """Return the commented default chronosq.toml written by `chronosq init`."""
    parts = [
        "# ChronosQ configuration. Durations are in seconds.",
        "# Unknown keys are rejected; `chronosq status` reads this file too.",
        "",
    ]
    for section, keys in SCHEMA.items():
        for key, (_allowed, _default, comment) in keys.items():
            parts.append(f"# {key}: {comment}")
        values = {key: default for key, (_a, default, _c) in keys.items()}
        parts.append(tomli_w.dumps({section: values}))
    parts.append(
        "# Per-type settings override [defaults], for example:\n"
        "# [types.email]\n"
        '# policy = "round_robin"\n'
        "# max_attempts = 5\n"
        "# timeout = 120\n"
    )
    return "\n".join(parts)


def write_default(path: Path) -> bool:
    """Write the default configuration unless a file exists; return True if written."""
    if path.exists():
        return False
    text = default_text()
    parse(tomllib.loads(text))
    fileops.write_bytes(path, text.encode(), durable=True)
    return True
