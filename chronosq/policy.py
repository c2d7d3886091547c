"""Load assignment policies and call the configured one for each job.

Policies are pluggy plugins registered under their policy name: the built-in
ones and third-party packages through the `chronosq.plugins` entry-point group,
others from module names or file paths listed in `[plugins] modules`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import signal
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import pluggy

from chronosq import fileops, hookspecs, logs
from chronosq.config import Config
from chronosq.errors import ConfigError
from chronosq.layout import Root
from chronosq.policy_types import Candidate, Job, PolicyContext

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "chronosq.plugins"


class PolicyError(Exception):
    """A policy raised, took too long, or chose a worker that was not offered."""


class PolicyTimeout(PolicyError):
    """A policy call ran past `scheduler.policy_timeout_seconds`."""


def load_module(spec: str, base: Path) -> ModuleType:
    """Import a plugin by module name, or from a .py file path relative to `base`."""
    if spec.endswith(".py") or "/" in spec:
        path = (base / spec).resolve()
        if not path.is_file():
            raise ConfigError(f"plugins.modules: no such file {spec!r} (looked at {path})")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"plugins.modules: cannot load {spec!r}")
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(f"plugins.modules: {spec!r} failed to load: {exc!r}") from None
        return module
    try:
        return importlib.import_module(spec)
    except Exception as exc:
        raise ConfigError(f"plugins.modules: cannot import {spec!r}: {exc!r}") from None


def plugin_manager(config: Config | None = None, root: Root | None = None) -> pluggy.PluginManager:
    """Return a plugin manager with the hook specs and every installed policy."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    if config is not None:
        base = root.path if root is not None else Path.cwd()
        for spec in config.get("plugins", "modules"):
            module = load_module(spec, base)
            name = getattr(module, "POLICY_NAME", module.__name__.rsplit(".", 1)[-1])
            if manager.get_plugin(name) is None:
                manager.register(module, name=name)
    return manager


def policy_names(manager: pluggy.PluginManager) -> list[str]:
    """Return the names of registered plugins that implement a policy."""
    return sorted(
        name
        for name, plugin in manager.list_name_plugin()
        if hasattr(plugin, "chronosq_choose_worker")
    )


def validate(config: Config, manager: pluggy.PluginManager) -> None:
    """Raise ConfigError when a configured policy is missing or rejects its options."""
    available = policy_names(manager)
    for name in sorted(config.policy_names()):
        if name not in available:
            raise ConfigError(
                f"{_policy_key(config, name)}: unknown policy {name!r}; "
                f"valid choices: {', '.join(available)}"
            )
    for job_type in sorted(config.types):
        chosen = config.for_type(job_type)
        caller = _caller(manager, chosen.policy, "chronosq_validate_options")
        caller(job_type=job_type, options=chosen.options, policies=available)


def _policy_key(config: Config, name: str) -> str:
    for job_type, table in sorted(config.types.items()):
        if table.get("policy") == name:
            return f"types.{job_type}.policy"
        if table.get("fallback") == name:
            return f"types.{job_type}.fallback"
    return "defaults.policy"


def _caller(manager: pluggy.PluginManager, name: str, hook: str) -> Any:
    """Return a hook caller that reaches the plugin `name` alone."""
    others = [
        plugin
        for other, plugin in manager.list_name_plugin()
        if other != name and hasattr(plugin, hook)
    ]
    return manager.subset_hook_caller(hook, remove_plugins=others)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise PolicyTimeout("policy call timed out")


class Policies:
    """The configured policy of each type, with its saved state under run/policies/.

    With `persist=False` state changes stay in memory, so a simulation moves
    nothing and leaves the real cursors as they were.
    """

    def __init__(
        self,
        root: Root,
        config: Config,
        manager: pluggy.PluginManager,
        *,
        persist: bool = True,
    ):
        self.root = root
        self.config = config
        self.manager = manager
        self.persist = persist
        self.timeout_seconds = float(config.get("scheduler", "policy_timeout_seconds"))
        self._contexts: dict[tuple[str, str], PolicyContext] = {}
        self._callers: dict[str, Any] = {}
        self._changed: set[tuple[str, str]] = set()

    def policy_of(self, job_type: str) -> str:
        return self.config.for_type(job_type).policy

    def context(self, job_type: str, policy: str) -> PolicyContext:
        """Return the context of one policy for one type, loading its state once."""
        key = (job_type, policy)
        found = self._contexts.get(key)
        if found is not None:
            return found
        state_dir = self.root.policies / policy
        context = PolicyContext(
            job_type=job_type,
            policy=policy,
            options=self.config.for_type(job_type).options,
            state=self._load_state(state_dir / f"{job_type}.json"),
            state_dir=state_dir,
            delegate=self._call,
        )
        self._contexts[key] = context
        return context

    def _load_state(self, path: Path) -> dict[str, Any]:
        try:
            data = fileops.read_json(path)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logs.log_event(logger, logging.ERROR, "policy.state_unreadable",
                           path=str(path), error=str(exc))
            return {}
        return data if isinstance(data, dict) else {}

    def choose(self, job: Job, candidates: list[Candidate]) -> str | None:
        """Return the worker the type's policy picks for `job`, or None to leave it.

        Raises PolicyError when the policy raises, runs past the time limit or
        picks a worker that was not offered.
        """
        policy = self.policy_of(job["type"])
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, self.timeout_seconds)
        try:
            return self._call(policy, job, candidates)
        except PolicyTimeout:
            raise PolicyTimeout(
                f"policy {policy!r} took longer than {self.timeout_seconds:g}s"
            ) from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def _call(self, policy: str, job: Job, candidates: list[Candidate]) -> str | None:
        context = self.context(job["type"], policy)
        caller = self._callers.get(policy)
        if caller is None:
            caller = _caller(self.manager, policy, "chronosq_choose_worker")
            self._callers[policy] = caller
        before = json.dumps(context.state, sort_keys=True)
        try:
            choice = caller(job=job, candidates=candidates, context=context)
        except PolicyError:
            raise
        except (Exception, SystemExit) as exc:
            # A plugin's sys.exit() must not stop the scheduler for every type.
            raise PolicyError(f"policy {policy!r} raised {exc!r}") from exc
        offered = {c["worker_id"] for c in candidates}
        if choice is not None and (not isinstance(choice, str) or choice not in offered):
            raise PolicyError(
                f"policy {policy!r} chose {choice!r}, which is not a candidate"
            )
        try:
            after = json.dumps(context.state, sort_keys=True)
        except (TypeError, ValueError) as exc:
            # Put the last good state back, so the next call starts from it.
            context.state.clear()
            context.state.update(json.loads(before))
            raise PolicyError(f"policy {policy!r} put state that is not JSON in "
                              f"context.state: {exc}") from None
        if after != before:
            self._changed.add((job["type"], policy))
        return choice

    def flush(self) -> None:
        """Save the state of every policy that changed since the last flush.

        The scheduler flushes after each batch of assignments, without fsync: a
        crash or power cut replays at most a batch of choices. For a rotation
        that shifts where it resumes, which keeps counts within one of even.
        """
        if not self.persist:
            self._changed.clear()
            return
        for job_type, policy in sorted(self._changed):
            context = self._contexts[(job_type, policy)]
            context.state_dir.mkdir(parents=True, exist_ok=True)
            fileops.write_json(context.state_dir / f"{job_type}.json", context.state,
                               durable=False)
        self._changed.clear()
