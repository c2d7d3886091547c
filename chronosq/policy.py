"""Load assignment policies and call the configured one for each job."""

from __future__ import annotations

import json
import logging
from pathlib import Path
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
    """A policy raised or returned a worker that was not offered; the job stays pending."""


def plugin_manager() -> pluggy.PluginManager:
    """Return a plugin manager with the hook specs and every installed policy."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


def policy_names(manager: pluggy.PluginManager) -> list[str]:
    """Return the names of registered plugins that implement a policy."""
    names = []
    for name, plugin in manager.list_name_plugin():
        if hasattr(plugin, "chronosq_choose_worker"):
            names.append(name)
    return sorted(names)


def validate(config: Config, manager: pluggy.PluginManager) -> None:
    """Raise ConfigError when a configured policy is not installed."""
    available = policy_names(manager)
    for name in sorted(config.policy_names()):
        if name not in available:
            key = _policy_key(config, name)
            raise ConfigError(
                f"{key}: unknown policy {name!r}; valid choices: {', '.join(available)}"
            )
    for job_type in config.types:
        chosen = config.for_type(job_type)
        caller = _caller(manager, chosen.policy, "chronosq_validate_options")
        caller(job_type=job_type, options=chosen.options)


def _policy_key(config: Config, name: str) -> str:
    for job_type, table in config.types.items():
        if table.get("policy") == name:
            return f"types.{job_type}.policy"
    return "defaults.policy"


def _caller(manager: pluggy.PluginManager, name: str, hook: str) -> Any:
    others = [
        plugin
        for other, plugin in manager.list_name_plugin()
        if other != name and hasattr(plugin, hook)
    ]
    return manager.subset_hook_caller(hook, remove_plugins=others)


class Policies:
    """The configured policy of each type, with its saved state under run/policies/."""

    def __init__(self, root: Root, config: Config, manager: pluggy.PluginManager):
        self.root = root
        self.config = config
        self.manager = manager
        self._contexts: dict[str, PolicyContext] = {}
        self._callers: dict[str, Any] = {}

    def context(self, job_type: str) -> PolicyContext:
        """Return the policy context of a type, loading its saved state once."""
        found = self._contexts.get(job_type)
        if found is not None:
            return found
        chosen = self.config.for_type(job_type)
        state_dir = self.root.policies / chosen.policy
        state_dir.mkdir(parents=True, exist_ok=True)
        state = self._load_state(state_dir / f"{job_type}.json")
        context = PolicyContext(
            job_type=job_type,
            policy=chosen.policy,
            options=chosen.options,
            state=state,
            state_dir=state_dir,
        )
        self._contexts[job_type] = context
        return context

    def _load_state(self, path: Path) -> dict[str, Any]:
        try:
            data = fileops.read_json(path)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logs.log_event(
                logger, logging.ERROR, "policy.state_unreadable",
                path=str(path), error=str(exc),
            )
            return {}
        return data if isinstance(data, dict) else {}

    def choose(self, job: Job, candidates: list[Candidate]) -> str | None:
        """Return the worker the type's policy picks for `job`, or None.

        Raises PolicyError when the policy raises or picks a worker that was not
        offered.
        """
        context = self.context(job["type"])
        caller = self._callers.get(context.policy)
        if caller is None:
            caller = _caller(self.manager, context.policy, "chronosq_choose_worker")
            self._callers[context.policy] = caller
        before = json.dumps(context.state, sort_keys=True)
        try:
            choice = caller(job=job, candidates=candidates, context=context)
        except Exception as exc:
            raise PolicyError(f"policy {context.policy!r} raised {exc!r}") from exc
        if choice is not None and choice not in {c["worker_id"] for c in candidates}:
            raise PolicyError(
                f"policy {context.policy!r} chose {choice!r}, which was not a candidate"
            )
        if json.dumps(context.state, sort_keys=True) != before:
            # The cursor is written on every change but not fsynced: a power cut
            # may replay a few choices, a process crash loses none.
            fileops.write_json(
                context.state_dir / f"{job['type']}.json", context.state, durable=False
            )
        return choice
