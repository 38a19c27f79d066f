"""The deployment files: s.yaml against the fc3 schema and the code, the EventBridge
pattern against the sample events, the RAM policy, and ``s preview`` on the real CLI."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts import check_deploy
from scripts.build_package import DEFAULT_OUTPUT
from scripts.eventbridge_pattern import PatternError, matches, parse
from tests.conftest import EVENTS

ROOT = Path(__file__).resolve().parent.parent
#: The Serverless Devs CLI whose ``s preview`` must render s.yaml (npm package version).
SERVERLESS_DEVS = "@serverless-devs/s@3.1.10"
#: npm's cache lives in the real home; the tests' own HOME is a fresh directory.
REAL_HOME = Path.home()


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return check_deploy.load_template()


@pytest.fixture(scope="module")
def props(template: dict[str, Any]) -> dict[str, Any]:
    """The function's props; s.yaml deploys exactly one."""
    (function_props,) = check_deploy.fc3_functions(template).values()
    return function_props


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not check_deploy.SCHEMA.exists():
        pytest.skip(f"no fc3 schema at {check_deploy.SCHEMA} (shared/ beside the clone)")
    loaded: dict[str, Any] = json.loads(check_deploy.SCHEMA.read_text(encoding="utf-8"))
    return loaded


def trigger(props: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [t for t in props["triggers"] if t["triggerName"] == name]
    assert len(found) == 1, f"{len(found)} triggers named {name}"
    return found[0]


def install_failed_pattern(props: dict[str, Any]) -> dict[str, Any]:
    return parse(trigger(props, "install-failed")["triggerConfig"]["eventRuleFilterPattern"])


# -- s.yaml -------------------------------------------------------------------------------


def test_s_yaml_is_edition_3_with_one_fc3_function(template: dict[str, Any]) -> None:
    assert template["edition"] == "3.0.0"
    assert list(check_deploy.fc3_functions(template)) == ["collector-reinstall"]


def test_function_props_validate_against_the_fc3_schema(
    props: dict[str, Any], schema: dict[str, Any]
) -> None:
    assert check_deploy.schema_problems(props, schema) == []


def test_schema_check_reports_a_wrong_prop_a_misspelt_one_and_a_wrong_trigger_config(
    props: dict[str, Any], schema: dict[str, Any]
) -> None:
    broken = copy.deepcopy(props)
    broken["runtime"] = "python3.11"
    broken["memmorySize"] = 512
    del trigger(broken, "sweep")["triggerConfig"]["enable"]
    trigger(broken, "install-failed")["triggerConfig"]["eventPattern"] = "{}"

    problems = check_deploy.schema_problems(broken, schema)

    assert any(p.startswith("props.runtime:") for p in problems)
    assert "memmorySize: not an fc3 prop" in problems
    assert any("'enable' is a required property" in p for p in problems)
    assert any(p.endswith("eventPattern: not in IEventBridge") for p in problems)


def test_function_runs_the_packaged_handler_and_initializer_on_python310(
    props: dict[str, Any],
) -> None:
    assert props["runtime"] == "python3.10"
    assert props["handler"] == "index.handler"
    assert props["instanceLifecycleConfig"]["initializer"]["handler"] == "index.initializer"
    assert Path(ROOT, props["code"]).resolve() == DEFAULT_OUTPUT


def test_pre_deploy_action_builds_the_directory_the_function_deploys(
    template: dict[str, Any], props: dict[str, Any]
) -> None:
    (step,) = template["resources"]["collector-reinstall"]["actions"]["pre-deploy"]
    command = step["run"].split()

    assert command[:2] == ["python3", "scripts/build_package.py"]
    assert Path(ROOT, step["path"], command[command.index("--output") + 1]).resolve() == (
        Path(ROOT, props["code"]).resolve()
    )


def test_vars_fill_in_with_their_own_type_and_as_text_inside_text() -> None:
    rendered = check_deploy.render_vars(
        {
            "vars": {"region": "cn-hangzhou", "on": False, "arn": "acs:mns:${vars.region}:1"},
            "props": {"enable": "${vars.on}", "queue": "${vars.arn}", "note": "x-${vars.on}"},
        }
    )

    assert rendered["props"] == {
        "enable": False,
        "queue": "acs:mns:cn-hangzhou:1",
        "note": "x-false",
    }


def test_an_undefined_var_is_an_error() -> None:
    with pytest.raises(check_deploy.TemplateError, match=r"vars\.nope"):
        check_deploy.render_vars({"vars": {}, "props": {"x": "${vars.nope}"}})


# -- settings -----------------------------------------------------------------------------


def test_environment_holds_only_settings_the_code_reads_with_values_it_accepts(
    props: dict[str, Any],
) -> None:
    assert check_deploy.environment_problems(props["environmentVariables"]) == []


def test_environment_leaves_out_only_the_test_endpoint_and_the_fallback_timeout(
    props: dict[str, Any],
) -> None:
    left_out = check_deploy.settings_read_by_code() - set(props["environmentVariables"])

    assert left_out == {"ES_ENDPOINT", "INVOCATION_TIMEOUT_SECONDS"}


def test_environment_check_flags_reserved_unknown_and_refused_settings() -> None:
    problems = check_deploy.environment_problems(
        {"FC_REGION": "cn-hangzhou", "NOT_A_SETTING": "x", "MAX_ATTEMPTS": "many"}
    )

    assert "FC_REGION: reserved by Function Compute" in problems
    assert "NOT_A_SETTING: not a setting that settings.py reads" in problems
    assert any("MAX_ATTEMPTS" in p and "refuses" in p for p in problems)


def test_settings_read_by_code_are_found_in_settings_py() -> None:
    assert {"ES_ENDPOINT", "MAX_ATTEMPTS", "LOG_LEVEL"} <= check_deploy.settings_read_by_code()


# -- time ---------------------------------------------------------------------------------


def test_timeout_covers_the_worst_case_of_the_handlers_retries(props: dict[str, Any]) -> None:
    assert check_deploy.timing_problems(props) == []
    assert props["timeout"] > check_deploy.worst_case_seconds(props["environmentVariables"])


def test_worst_case_of_the_default_retries_is_139_5_seconds_per_call() -> None:
    # 8 attempts x (3 s connect + 10 s answer) + backoff 0.5+1+2+4+8+10+10 s.
    assert check_deploy.worst_case_seconds({"CHECK_LIVE_STATE": "false"}) == 139.5
    assert check_deploy.worst_case_seconds({"CHECK_LIVE_STATE": "true"}) == 279.0


def test_timing_check_flags_a_timeout_the_retries_do_not_fit_in(props: dict[str, Any]) -> None:
    short = {**props, "timeout": 120}

    assert any(p.startswith("timeout 120 s") for p in check_deploy.timing_problems(short))


def test_async_retries_are_bounded_and_failed_events_go_to_a_queue(props: dict[str, Any]) -> None:
    config = props["asyncInvokeConfig"]

    assert 0 <= config["maxAsyncRetryAttempts"] <= 3
    assert config["maxAsyncEventAgeInSeconds"] <= 24 * 3600
    assert config["destinationConfig"]["onFailure"]["destination"].startswith("acs:mns:")


def test_logs_go_to_sls(props: dict[str, Any]) -> None:
    log_config = props["logConfig"]

    assert log_config == "auto" or {"project", "logstore"} <= set(log_config)


# -- triggers -----------------------------------------------------------------------------


def test_install_failed_trigger_invokes_asynchronously_from_the_default_bus(
    props: dict[str, Any],
) -> None:
    config = trigger(props, "install-failed")["triggerConfig"]

    assert config["triggerEnable"] is True
    assert config["asyncInvocationType"] is True
    assert config["eventSourceConfig"]["eventSourceType"] == "Default"
    assert json.loads(config["eventRuleFilterPattern"]) == install_failed_pattern(props)


@pytest.mark.parametrize(
    ("label", "event"),
    list(check_deploy.sample_events(check_deploy.TRIGGER_EVENTS["install-failed"])),
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_install_failed_pattern_matches_each_sample_event_meant_for_it(
    props: dict[str, Any], label: str, event: object
) -> None:
    assert matches(install_failed_pattern(props), event), label


OTHER_EVENTS = {
    "cloudmonitor.json": json.loads((EVENTS / "cloudmonitor.json").read_text()),
    "cloudmonitor-string-content.json": json.loads(
        (EVENTS / "cloudmonitor-string-content.json").read_text()
    ),
    "manual.json": json.loads((EVENTS / "manual.json").read_text()),
}
_CLOUD_EVENT = json.loads((EVENTS / "eventbridge-cloudevent.json").read_text())
OTHER_EVENTS.update(
    {
        "another source": {**_CLOUD_EVENT, "source": "acs.custom.other-monitor"},
        "an Alibaba Cloud source": {**_CLOUD_EVENT, "source": "acs.elasticsearch"},
        "another type": {**_CLOUD_EVENT, "type": "elasticsearch:Collector:Installed"},
        "a longer type": {**_CLOUD_EVENT, "type": "elasticsearch:Collector:InstallFailedTwice"},
        "no type": {k: v for k, v in _CLOUD_EVENT.items() if k != "type"},
    }
)


@pytest.mark.parametrize("label", sorted(OTHER_EVENTS))
def test_install_failed_pattern_matches_no_other_event(props: dict[str, Any], label: str) -> None:
    assert not matches(install_failed_pattern(props), OTHER_EVENTS[label])


def test_sweep_timer_is_off_by_default_and_runs_on_a_schedule(props: dict[str, Any]) -> None:
    sweep = trigger(props, "sweep")

    assert sweep["triggerType"] == "timer"
    assert sweep["triggerConfig"]["enable"] is False
    assert sweep["triggerConfig"]["cronExpression"]


# -- the EventBridge pattern matcher -------------------------------------------------------

EVENT = {
    "source": "acs.custom.collector-monitor",
    "type": "elasticsearch:Collector:InstallFailed",
    "subject": "acs:elasticsearch:cn-hangzhou:1234567890123456:collectors/ct-cn-1",
    "data": {"nodes": ["i-1", "i-2"], "count": 2, "retry": True, "note": None},
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"source": ["acs.custom.collector-monitor"]}, True),
        ({"source": ["acs.other", "acs.custom.collector-monitor"]}, True),
        ({"source": ["acs.other"]}, False),
        ({"type": [{"prefix": "elasticsearch:Collector:"}]}, True),
        ({"type": [{"prefix": "elasticsearch:Instance:"}]}, False),
        ({"subject": [{"suffix": "collectors/ct-cn-1"}]}, True),
        ({"subject": [{"suffix": "collectors/ct-cn-2"}]}, False),
        ({"source": [{"anything-but": "acs.other"}]}, True),
        ({"source": [{"anything-but": ["acs.other", "acs.custom.collector-monitor"]}]}, False),
        ({"source": [{"anything-but": {"prefix": "acs.custom."}}]}, False),
        ({"id": [{"anything-but": "x"}]}, False),
        ({"id": [{"exists": False}]}, True),
        ({"id": [{"exists": True}]}, False),
        ({"data": {"nodes": ["i-2"]}}, True),
        ({"data": {"nodes": ["i-3"]}}, False),
        ({"data": {"count": [{"numeric": [">", 1, "<=", 2]}]}}, True),
        ({"data": {"count": [{"numeric": [">", 2]}]}}, False),
        ({"data": {"retry": [True]}}, True),
        ({"data": {"count": [True]}}, False),
        ({"data": {"note": [None]}}, True),
        ({"data": {"missing": [None]}}, False),
        ({"data": {"count": [2.0]}}, True),
        ({"source": ["acs.custom.collector-monitor"], "type": ["other"]}, False),
        ({"subject": {"nested": ["x"]}}, False),
    ],
)
def test_matcher_applies_each_operator_both_ways(pattern: dict[str, Any], expected: bool) -> None:
    assert matches(parse(json.dumps(pattern)), EVENT) is expected


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '["a list"]',
        "{}",
        '{"source": "acs.oss"}',
        '{"source": []}',
        '{"source": [["nested"]]}',
        '{"source": [{"cidr": "10.0.0.0/8"}]}',
        '{"source": [{"prefix": "a", "suffix": "b"}]}',
        '{"source": [{"prefix": 1}]}',
        '{"count": [{"numeric": [">"]}]}',
    ],
)
def test_matcher_refuses_patterns_it_cannot_evaluate(text: str) -> None:
    with pytest.raises(PatternError):
        parse(text)


# -- RAM policy ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(check_deploy.POLICY.read_text(encoding="utf-8"))
    return loaded


def test_ram_policy_grants_only_what_the_function_needs_scoped_to_arns(
    policy: dict[str, Any],
) -> None:
    assert check_deploy.policy_problems(policy) == []


def test_ram_policy_grants_every_collector_api_action_the_code_calls(
    policy: dict[str, Any],
) -> None:
    granted = {statement["Action"] for statement in policy["Statement"]}
    called = {f"elasticsearch:{action}" for action in check_deploy.api_actions_in_code()}

    assert "elasticsearch:ReinstallCollector" in called
    assert called <= granted


def test_policy_check_flags_wildcards_unscoped_resources_and_extra_actions() -> None:
    bad = {
        "Version": "1",
        "Statement": [
            {"Effect": "Allow", "Action": "elasticsearch:*", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ecs:DeleteInstance"], "Resource": "acs:ecs:${x}"},
        ],
    }

    problems = check_deploy.policy_problems(bad)

    assert any("wildcard action elasticsearch:*" in p for p in problems)
    assert any("*: not an ARN" in p for p in problems)
    assert any("unknown placeholder x" in p for p in problems)
    assert any(p.startswith("actions are") for p in problems)


# -- s preview ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serverless_devs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned Serverless Devs CLI, installed from npm into a temporary prefix."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed to run s preview")
    prefix = tmp_path_factory.mktemp("serverless-devs")
    install = subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", SERVERLESS_DEVS],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HOME": str(REAL_HOME)},
        check=False,
    )
    assert install.returncode == 0, f"npm install {SERVERLESS_DEVS} failed:\n{install.stderr}"
    return prefix / "node_modules" / "@serverless-devs" / "s" / "bin" / "s"


def network_namespace() -> list[str] | None:
    """A command prefix that runs a program with no network at all, where unshare allows."""
    prefix = ["unshare", "--net", "--map-root-user"]
    if shutil.which("unshare") is None:
        return None
    if subprocess.run([*prefix, "true"], capture_output=True, check=False).returncode != 0:
        return None
    return prefix


def run_s(serverless_devs: Path, workspace: Path, *arguments: str) -> str:
    """``s`` in ``workspace`` (its home too), without network where possible; its output."""
    # NODE_ENV=test keeps the CLI from starting its update-check and usage-report
    # daemons, the only network traffic a preview makes.
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(workspace),
        "serverless_devs_config_home": str(workspace),
        "NODE_ENV": "test",
    }
    result = subprocess.run(
        [*(network_namespace() or []), "node", str(serverless_devs), *arguments, "--silent"],
        stdin=subprocess.DEVNULL,
        cwd=workspace,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"s {' '.join(arguments)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_s_preview_renders_s_yaml_offline_as_these_checks_read_it(
    serverless_devs: Path, tmp_path: Path, template: dict[str, Any]
) -> None:
    shutil.copy(ROOT / "s.yaml", tmp_path / "s.yaml")

    rendered = json.loads(run_s(serverless_devs, tmp_path, "preview", "-o", "json"))

    assert rendered["resources"] == template["resources"]


def test_s_preview_with_an_access_key_fills_in_the_account_everywhere(
    serverless_devs: Path, tmp_path: Path
) -> None:
    if network_namespace() is None:
        pytest.skip("s config add calls STS; it runs here only with no network (unshare)")
    shutil.copy(ROOT / "s.yaml", tmp_path / "s.yaml")
    add_fake_access = ["config", "add", "-a", "default", "-f", "--AccountID", "1234"]
    add_fake_access += ["--AccessKeyID", "LTAI-not-a-key", "--AccessKeySecret", "not-a-secret"]
    run_s(serverless_devs, tmp_path, *add_fake_access)

    rendered = json.loads(run_s(serverless_devs, tmp_path, "preview", "-o", "json"))

    props = rendered["resources"]["collector-reinstall"]["props"]
    assert "${" not in json.dumps(rendered["resources"])
    assert props["role"] == "acs:ram::1234:role/collector-reinstall"
