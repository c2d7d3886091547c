"""Rule-based: route jobs by type, priority and payload fields.

Rules are tried in order and the first whose conditions all hold decides. A rule
names one worker (`worker`) or several (`workers`, taken in rotation). When none
of its workers is a candidate (dead, full, or not serving the type) the job stays
pending for them. Jobs that match no rule go to the `fallback` policy,
round_robin by default, which sees the type's `weights` and `options` and is
offered every candidate, the workers that rules name included.

    [types.review]
    policy = "rule_based"
    fallback = "round_robin"
    rules = [
      { match = { "payload.customer_id" = "acme" }, worker = "acme_1" },
      { match = { priority = { in = ["high"] } }, workers = ["fast_1", "fast_2"] },
      { match = { "payload.amount" = { gt = 1000 }, "payload.email" = { regex = "@corp\\\\.example$" } }, worker = "audit" },
    ]

A condition maps a field (`type`, `priority`, `job_id` or `payload.a.b`) to a
value, which must be equal, or to a table with one or more operators: eq, ne,
in, not_in, gt, gte, lt, lte (numbers) and regex (strings; re.search).
A missing field matches nothing but `ne` and `not_in`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from chronosq.errors import ConfigError
from chronosq.hookspecs import hookimpl
from chronosq.policy_types import Candidate, Job, PolicyContext

DEFAULT_FALLBACK = "round_robin"
OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "regex")
FIELDS = ("type", "priority", "job_id")
_MISSING = object()


def field_value(job: Job, field: str) -> Any:
    """Return a job's value for a rule field, or _MISSING."""
    if field in FIELDS:
        return job.get(field, _MISSING)
    value: Any = job.get("payload", {})
    for part in field.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def holds(value: Any, operator: str, operand: Any) -> bool:
    """True when `value operator operand` holds for one condition."""
    if operator == "ne":
        return value is _MISSING or value != operand
    if operator == "not_in":
        return value is _MISSING or value not in operand
    if value is _MISSING:
        return False
    if operator == "eq":
        return bool(value == operand)
    if operator == "in":
        return value in operand
    if operator == "regex":
        return isinstance(value, str) and _compiled(operand).search(value) is not None
    if not _is_number(value):
        return False
    if operator == "gt":
        return bool(value > operand)
    if operator == "gte":
        return bool(value >= operand)
    if operator == "lt":
        return bool(value < operand)
    return bool(value <= operand)


def matches(job: Job, match: dict[str, Any]) -> bool:
    """True when every condition of a rule's `match` table holds for the job."""
    for field, condition in match.items():
        value = field_value(job, field)
        tests = condition if isinstance(condition, dict) else {"eq": condition}
        if not all(holds(value, op, operand) for op, operand in tests.items()):
            return False
    return True


def rule_workers(rule: dict[str, Any]) -> list[str]:
    if "worker" in rule:
        return [rule["worker"]]
    return list(rule["workers"])


@hookimpl
def chronosq_choose_worker(
    job: Job, candidates: list[Candidate], context: PolicyContext
) -> str | None:
    for index, rule in enumerate(context.options.get("rules", [])):
        if not matches(job, rule.get("match", {})):
            continue
        offered = {c["worker_id"] for c in candidates}
        listed = [w for w in rule_workers(rule) if w in offered]
        if not listed:
            return None
        cursors: dict[str, str] = context.state.setdefault("rule_cursors", {})
        last = cursors.get(str(index))
        position = listed.index(last) + 1 if last in listed else 0
        chosen = listed[position % len(listed)]
        cursors[str(index)] = chosen
        return chosen
    fallback = context.options.get("fallback", DEFAULT_FALLBACK)
    return context.delegate(fallback, job, candidates)


def _rule_error(job_type: str, index: int, message: str) -> ConfigError:
    return ConfigError(f"types.{job_type}.rules[{index}]: {message}")


def _validate_condition(job_type: str, index: int, field: str, condition: Any) -> None:
    if field not in FIELDS and not field.startswith("payload."):
        raise _rule_error(job_type, index, f"unknown field {field!r}; use "
                          f"{', '.join(FIELDS)} or payload.NAME")
    if not isinstance(condition, dict):
        return
    if not condition:
        raise _rule_error(job_type, index, f"{field}: empty condition table")
    for operator, operand in condition.items():
        if operator not in OPERATORS:
            raise _rule_error(job_type, index, f"{field}: unknown operator {operator!r}; "
                              f"valid: {', '.join(OPERATORS)}")
        if operator in ("in", "not_in") and not isinstance(operand, list):
            raise _rule_error(job_type, index, f"{field}.{operator}: expected a list")
        if operator in ("gt", "gte", "lt", "lte") and not _is_number(operand):
            raise _rule_error(job_type, index, f"{field}.{operator}: expected a number")
        if operator == "regex":
            if not isinstance(operand, str):
                raise _rule_error(job_type, index, f"{field}.regex: expected a string")
            try:
                re.compile(operand)
            except re.error as exc:
                raise _rule_error(job_type, index,
                                  f"{field}.regex: invalid pattern {operand!r}: {exc}") from None


def _validate_rule(job_type: str, index: int, rule: Any) -> None:
    if not isinstance(rule, dict):
        raise _rule_error(job_type, index, "expected a table with match and worker(s)")
    unknown = sorted(set(rule) - {"match", "worker", "workers"})
    if unknown:
        raise _rule_error(job_type, index, f"unknown key {unknown[0]!r}; "
                          "valid keys: match, worker, workers")
    if ("worker" in rule) == ("workers" in rule):
        raise _rule_error(job_type, index, "give exactly one of worker or workers")
    workers = rule_workers(rule)
    if not workers or not all(isinstance(w, str) and w for w in workers):
        raise _rule_error(job_type, index, "worker ids must be non-empty strings")
    match = rule.get("match", {})
    if not isinstance(match, dict):
        raise _rule_error(job_type, index, "match: expected a table of conditions")
    for field, condition in match.items():
        _validate_condition(job_type, index, field, condition)


@hookimpl
def chronosq_validate_options(
    job_type: str, options: dict[str, Any], policies: list[str]
) -> None:
    for key in sorted(options):
        if key not in ("rules", "fallback", "weights", "options"):
            raise ConfigError(f"types.{job_type}.{key}: rule_based takes rules and "
                              "fallback, plus weights or options for its fallback; "
                              "valid keys: rules, fallback, weights, options")
    if "rules" not in options:
        raise ConfigError(f"types.{job_type}.rules: missing; rule_based needs a list of rules")
    for index, rule in enumerate(options["rules"]):
        _validate_rule(job_type, index, rule)
    fallback = options.get("fallback", DEFAULT_FALLBACK)
    if fallback == "rule_based" or fallback not in policies:
        choices = ", ".join(p for p in policies if p != "rule_based")
        raise ConfigError(f"types.{job_type}.fallback: invalid policy {fallback!r}; "
                          f"valid choices: {choices}")
