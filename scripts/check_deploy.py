#!/usr/bin/env python3
"""Check the deployment files offline: s.yaml and policies/ram-policy.json.

    .venv/bin/python scripts/check_deploy.py [--schema ../shared/fc3/schema.json]

What it checks, with the vars of s.yaml filled in as Serverless Devs fills them:

* every fc3 resource's props against the fc3 component's JSON schema;
* the environment: names FC accepts, only settings the code reads, values it accepts;
* the timeout against the worst case of the handler's retries;
* asynchronous invocation: bounded retries, a failure destination;
* every EventBridge trigger's pattern, against the sample events;
* the RAM policy: only the actions the function needs, none with a wildcard.

Prints each problem and exits 1 if there is any. Needs PyYAML and jsonschema
(``requirements-dev.txt``). ``tests/test_deploy.py`` runs the same checks.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import string
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "src")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import yaml  # noqa: E402

from collector_reinstall.errors import ConfigurationError  # noqa: E402
from collector_reinstall.retry import RetryPolicy  # noqa: E402
from collector_reinstall.settings import Settings  # noqa: E402
from scripts.eventbridge_pattern import PatternError, matches, parse  # noqa: E402

TEMPLATE = ROOT / "s.yaml"
POLICY = ROOT / "policies" / "ram-policy.json"
EVENTS = ROOT / "events"
#: CI lays a copy of shared/ beside the clone.
SCHEMA = ROOT.parent / "shared" / "fc3" / "schema.json"

#: What the function's role needs, one statement each so that a user can drop one:
#: the collector API calls, the sweep's fan-out, and what FC does as the role on the
#: function's behalf (write its logs, send a failed event to the MNS queue).
POLICY_ACTIONS = (
    "elasticsearch:ReinstallCollector",
    "elasticsearch:DescribeCollector",
    "elasticsearch:ListCollectors",
    "fc:InvokeFunction",
    "log:PostLogStoreLogs",
    "mns:SendMessage",
)
#: The ``${...}`` fields of the policy, with sample values for checking the ARNs.
POLICY_FIELDS = {
    "region": "cn-hangzhou",
    "accountId": "1234567890123456",
    "fanoutService": "collector-reinstall",
    "fanoutFunction": "collector-reinstall",
    "logProject": "1234567890123456-cn-hangzhou-logproject",
    "logstore": "fc-v3-collector-reinstall-logstore",
    "failureQueue": "collector-reinstall-failed",
}
#: Sample events each trigger must match, by trigger name; a list file counts per event.
TRIGGER_EVENTS = {"install-failed": ("eventbridge-cloudevent.json", "eventbridge-batch.json")}

_VARS_REFERENCE = re.compile(r"\$\{\s*vars\.([A-Za-z0-9_.-]+)\s*\}")
_ENV_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESERVED_ENV_NAMES = {"accessKeyID", "accessKeySecret", "securityToken", "topic"}
_ENV_LIMIT_BYTES = 4096


class TemplateError(ValueError):
    """s.yaml cannot be read or its vars cannot be filled in."""


# -- s.yaml -------------------------------------------------------------------------------


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """s.yaml with every ``${vars.*}`` filled in; other ``${...}`` (such as
    ``${config('AccountID')}``, known only with credentials) are left as written."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise TemplateError(f"{path.name} is not a YAML mapping")
    return render_vars(document)


def render_vars(document: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in ``${vars.name}`` as Serverless Devs does: a value that is nothing but the
    reference takes the var's own type (a number, a mapping); inside text it is text."""
    variables = document.get("vars") or {}
    resolving: list[str] = []

    def lookup(reference: str) -> object:
        if reference in resolving:
            raise TemplateError(f"vars.{reference} refers to itself")
        value: object = variables
        for key in reference.split("."):
            if not isinstance(value, Mapping) or key not in value:
                raise TemplateError(f"${{vars.{reference}}} is not defined")
            value = value[key]
        resolving.append(reference)
        try:
            return render(value)
        finally:
            resolving.pop()

    def render(value: object) -> object:
        if isinstance(value, Mapping):
            return {key: render(item) for key, item in value.items()}
        if isinstance(value, list):
            return [render(item) for item in value]
        if not isinstance(value, str):
            return value
        whole = _VARS_REFERENCE.fullmatch(value.strip())
        if whole:
            return lookup(whole.group(1))
        return _VARS_REFERENCE.sub(lambda found: _as_text(lookup(found.group(1))), value)

    rendered = render(document)
    assert isinstance(rendered, dict)
    return rendered


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (Mapping, list)):
        raise TemplateError(f"a mapping or list cannot stand inside text: {value!r}")
    return str(value)


def fc3_functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The props of every fc3 resource, by resource name."""
    return {
        name: resource.get("props") or {}
        for name, resource in (template.get("resources") or {}).items()
        if isinstance(resource, Mapping) and resource.get("component") == "fc3"
    }


def schema_problems(props: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every way ``props`` breaks the fc3 schema (JSON Schema draft-07), and two ways the
    schema lets pass: a misspelt prop, and a trigger config that fits another trigger
    type (the schema takes any of them for every trigger)."""
    problems = _validation_errors(props, schema, "props")
    problems += [f"{key}: not an fc3 prop" for key in props if key not in schema["properties"]]
    for index, trigger in enumerate(props.get("triggers") or []):
        definition = _TRIGGER_CONFIGS.get(trigger.get("triggerType"))
        if definition is None:
            continue
        config_schema = {
            "$ref": f"#/definitions/{definition}",
            "definitions": schema["definitions"],
        }
        where = f"triggers.{index}.triggerConfig"
        config = trigger.get("triggerConfig") or {}
        problems += _validation_errors(config, config_schema, where)
        known = schema["definitions"][definition]["properties"]
        problems += [f"{where}.{key}: not in {definition}" for key in config if key not in known]
    return problems


_TRIGGER_CONFIGS = {
    "eventbridge": "IEventBridge",
    "timer": "ITimerTriggerConfig",
    "http": "IHttpTriggerConfig",
    "oss": "IOssTriggerConfig",
    "log": "ILogTriggerConfig",
    "mns_topic": "IMnsTriggerConfig",
    "cdn_events": "ICdnTriggerConfig",
}


def _validation_errors(instance: object, schema: Mapping[str, Any], root: str) -> list[str]:
    from jsonschema import Draft7Validator

    errors = sorted(Draft7Validator(schema).iter_errors(instance), key=lambda e: e.json_path)
    return [
        f"{'.'.join([root, *(str(part) for part in error.absolute_path)])}: {error.message}"
        for error in errors
    ]


# -- settings -----------------------------------------------------------------------------


def settings_read_by_code(module: Path | None = None) -> set[str]:
    """The variable names ``settings.py`` reads: every ``helper(env, "NAME", ...)``."""
    module = module or ROOT / "src" / "collector_reinstall" / "settings.py"
    names = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            environment, name = node.args[0], node.args[1]
            if (
                isinstance(environment, ast.Name)
                and environment.id == "env"
                and isinstance(name, ast.Constant)
                and isinstance(name.value, str)
            ):
                names.add(name.value)
    return names


def environment_problems(environment: Mapping[str, Any]) -> list[str]:
    """Names FC would refuse or the code does not read, and values the code refuses."""
    problems = []
    for name, value in environment.items():
        if not _ENV_NAME.fullmatch(name):
            problems.append(f"{name}: FC wants a letter, then letters, digits or _")
        if name.upper().startswith("FC_") or name in _RESERVED_ENV_NAMES:
            problems.append(f"{name}: reserved by Function Compute")
        if not isinstance(value, str):
            problems.append(f"{name}: {value!r} is not a string")
    unread = sorted(set(environment) - settings_read_by_code())
    problems += [f"{name}: not a setting that settings.py reads" for name in unread]
    size = sum(len(f"{name}{value}".encode()) for name, value in environment.items())
    if size > _ENV_LIMIT_BYTES:
        problems.append(f"the variables take {size} bytes; FC allows {_ENV_LIMIT_BYTES}")
    try:
        Settings.from_environ({name: str(value) for name, value in environment.items()})
    except ConfigurationError as error:
        problems.append(f"the code refuses a value: {error}")
    return problems


# -- time ---------------------------------------------------------------------------------


class _Ceiling(random.Random):
    """Draws the top of every jitter range: the longest backoff the policy allows."""

    def uniform(self, a: float, b: float) -> float:
        return max(a, b)


def worst_case_seconds(environment: Mapping[str, str]) -> float:
    """The longest one reinstall can take inside an invocation that had all the time in
    the world: every attempt waits out its connect and read timeouts, every backoff is
    its ceiling. With CHECK_LIVE_STATE, DescribeCollector goes first, retried the same way.
    """
    settings = Settings.from_environ(environment)
    policy = RetryPolicy(
        settings.max_attempts, settings.retry_base_delay_s, settings.retry_max_delay_s
    )
    attempts = settings.max_attempts
    waiting = attempts * (settings.connect_timeout_s + settings.request_timeout_s)
    backoff = sum(policy.delay(number, None, _Ceiling()) for number in range(1, attempts))
    calls = 2 if settings.check_live_state else 1
    return calls * (waiting + backoff)


def reserve_seconds(timeout: float) -> float:
    """What the handler keeps back from the function's timeout to answer in time: 10%,
    at least 0.5 s, at most 5 s (README: Failures)."""
    return min(5.0, max(0.5, timeout * 0.1))


def timing_problems(props: Mapping[str, Any]) -> list[str]:
    """The timeout must let the handler finish its retries; async tries must fit the
    event's age limit."""
    problems = []
    timeout = float(props.get("timeout") or 3)
    environment = props.get("environmentVariables") or {}
    needed = worst_case_seconds(environment) + reserve_seconds(timeout)
    if needed > timeout:
        problems.append(
            f"timeout {timeout:g} s: the handler's retries can take {needed:g} s "
            "(MAX_ATTEMPTS x (CONNECT + REQUEST timeout) + backoff, + reserve)"
        )
    fallback = environment.get("INVOCATION_TIMEOUT_SECONDS")
    if fallback and float(fallback) >= timeout:
        problems.append(f"INVOCATION_TIMEOUT_SECONDS {fallback} is not below timeout {timeout}")
    async_config = props.get("asyncInvokeConfig") or {}
    retries = async_config.get("maxAsyncRetryAttempts")
    max_age = async_config.get("maxAsyncEventAgeInSeconds")
    if retries is None or max_age is None:
        problems.append("asyncInvokeConfig: set maxAsyncRetryAttempts and maxAsyncEventAge")
    elif max_age < (retries + 1) * timeout:
        problems.append(
            f"maxAsyncEventAgeInSeconds {max_age} ends before {retries + 1} tries of "
            f"{timeout:g} s could run"
        )
    on_failure = (async_config.get("destinationConfig") or {}).get("onFailure") or {}
    if not str(on_failure.get("destination", "")).startswith("acs:"):
        problems.append("asyncInvokeConfig: no onFailure destination ARN")
    return problems


# -- triggers -----------------------------------------------------------------------------


def triggers(props: Mapping[str, Any], trigger_type: str) -> list[dict[str, Any]]:
    return [t for t in props.get("triggers") or [] if t.get("triggerType") == trigger_type]


def sample_events(names: tuple[str, ...]) -> Iterator[tuple[str, object]]:
    """``(label, event)`` for every event in the named files of events/."""
    for name in names:
        document = json.loads((EVENTS / name).read_text(encoding="utf-8"))
        if isinstance(document, list):
            for position, event in enumerate(document):
                yield f"{name}[{position}]", event
        else:
            yield name, document


def pattern_problems(props: Mapping[str, Any]) -> list[str]:
    """Each EventBridge trigger's pattern must parse and match the samples meant for it."""
    problems = []
    for trigger in triggers(props, "eventbridge"):
        name = trigger.get("triggerName", "?")
        try:
            pattern = parse(trigger["triggerConfig"]["eventRuleFilterPattern"])
        except PatternError as error:
            problems.append(f"trigger {name}: {error}")
            continue
        for label, event in sample_events(TRIGGER_EVENTS.get(name, ())):
            if not matches(pattern, event):
                problems.append(f"trigger {name}: its pattern does not match {label}")
    return problems


# -- RAM policy ---------------------------------------------------------------------------


def api_actions_in_code() -> set[str]:
    """The collector API actions the code builds requests for: ``ApiCall("Name", ...)``."""
    actions = set()
    for module in (ROOT / "src" / "collector_reinstall").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ApiCall"):
                continue
            named = [k.value for k in node.keywords if k.arg == "action"]
            first = node.args[:1] or named
            if first and isinstance(first[0], ast.Constant) and isinstance(first[0].value, str):
                actions.add(first[0].value)
    return actions


def policy_problems(policy: object) -> list[str]:
    """Only the listed actions, one statement each, resources scoped to ARNs."""
    if not isinstance(policy, Mapping) or policy.get("Version") != "1":
        return ['the policy is not a JSON object with "Version": "1"']
    statements = policy.get("Statement")
    if not isinstance(statements, list) or not statements:
        return ["the policy has no Statement list"]
    problems = []
    granted: list[str] = []
    for number, statement in enumerate(statements):
        actions = _as_list(statement.get("Action"))
        resources = _as_list(statement.get("Resource"))
        where = f"statement {number} ({', '.join(actions) or 'no action'})"
        if statement.get("Effect") != "Allow":
            problems.append(f"{where}: Effect is not Allow")
        if len(actions) != 1:
            problems.append(f"{where}: give each action its own statement")
        if not resources:
            problems.append(f"{where}: no Resource")
        problems += [f"{where}: wildcard action {a}" for a in actions if "*" in a]
        problems += [f"{where}: {r}" for r in map(_resource_problem, resources) if r]
        granted += actions
    if sorted(granted) != sorted(POLICY_ACTIONS):
        problems.append(f"actions are {sorted(granted)}, expected {sorted(POLICY_ACTIONS)}")
    missing = sorted({f"elasticsearch:{a}" for a in api_actions_in_code()} - set(granted))
    problems += [f"the code calls {action}, which the policy does not grant" for action in missing]
    return problems


def _resource_problem(resource: str) -> str | None:
    fields = {
        found.group("named") or found.group("braced")
        for found in string.Template.pattern.finditer(resource)
        if found.group("named") or found.group("braced")
    }
    unknown = sorted(fields - set(POLICY_FIELDS))
    if unknown:
        return f"{resource}: unknown placeholder {unknown[0]}"
    arn = string.Template(resource).substitute(POLICY_FIELDS)
    if not re.fullmatch(r"acs:[a-z]+:[a-z0-9-]+:[0-9]+:\S+", arn):
        return f"{resource}: not an ARN scoped to a region and an account"
    return None


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


# -- command line -------------------------------------------------------------------------


def all_problems(template_path: Path, schema_path: Path | None) -> list[str]:
    template = load_template(template_path)
    problems = []
    if template.get("edition") != "3.0.0":
        problems.append("s.yaml: edition is not 3.0.0")
    functions = fc3_functions(template)
    if not functions:
        problems.append("s.yaml: no fc3 resource")
    schema = json.loads(schema_path.read_text(encoding="utf-8")) if schema_path else None
    for name, props in functions.items():
        found = schema_problems(props, schema) if schema else []
        found += environment_problems(props.get("environmentVariables") or {})
        found += timing_problems(props)
        found += pattern_problems(props)
        problems += [f"{name}: {problem}" for problem in found]
    policy = json.loads(POLICY.read_text(encoding="utf-8"))
    problems += [f"ram-policy.json: {problem}" for problem in policy_problems(policy)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--schema", type=Path, default=SCHEMA, help="fc3 props JSON schema")
    options = parser.parse_args(argv)
    schema_path = options.schema if options.schema.exists() else None
    if schema_path is None:
        print(f"no schema at {options.schema}: props are not checked against it")
    problems = all_problems(options.template, schema_path)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "no problems found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
