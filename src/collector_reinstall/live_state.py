"""Read a collector's live state and choose the nodes that a reinstall can help.

The collector API reports each ECS machine's agent under ``extendConfigs[]``, in the
entry with ``configType: collectorDeployMachine`` and ``type: ECSInstanceId``. Only a
``failed`` install is reinstalled; ``uninstalled`` too when asked, because right
after a collector is created its machines read ``uninstalled`` while the first
install is still running. A lost heartbeat is not an install failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_SKIP_REASONS = {
    "heartOk": "the agent's heartbeat is normal",
    "heartLost": "the heartbeat is lost, which is not an install failure",
    "uninstalled": "not installed yet; REINSTALL_UNINSTALLED is off",
}


@dataclass(frozen=True)
class Collector:
    """What the API says of one collector, as far as reinstalling goes."""

    collector_id: str
    name: str | None
    updated_at: datetime | None
    machines: Mapping[str, str]

    @classmethod
    def from_api(cls, result: Mapping[str, Any]) -> Collector:
        """Build from DescribeCollector's ``Result`` or one entry of ListCollectors'."""
        machines: dict[str, str] = {}
        for config in result.get("extendConfigs") or ():
            if not isinstance(config, Mapping):
                continue
            if config.get("configType") != "collectorDeployMachine":
                continue
            if config.get("type") != "ECSInstanceId":
                continue
            for machine in config.get("machines") or ():
                if isinstance(machine, Mapping) and isinstance(machine.get("instanceId"), str):
                    machines[machine["instanceId"]] = str(machine.get("agentStatus"))
        return cls(
            collector_id=str(result.get("resId")),
            name=result.get("name") if isinstance(result.get("name"), str) else None,
            updated_at=_parse_time(result.get("gmtUpdateTime")),
            machines=machines,
        )


@dataclass(frozen=True)
class Skipped:
    """A node left out of a reinstall, and why."""

    node: str
    agent_status: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "agentStatus": self.agent_status, "reason": self.reason}


def choose_nodes(
    requested: tuple[str, ...] | None, collector: Collector, *, reinstall_uninstalled: bool
) -> tuple[tuple[str, ...], list[Skipped]]:
    """Split ``requested`` (``None``: every machine) into nodes to reinstall and skips."""
    qualifying = {"failed", "uninstalled"} if reinstall_uninstalled else {"failed"}
    candidates = tuple(collector.machines) if requested is None else requested
    chosen: list[str] = []
    skipped: list[Skipped] = []
    for node in candidates:
        status = collector.machines.get(node)
        if status is None:
            skipped.append(Skipped(node, None, "not a machine of this collector"))
        elif status in qualifying:
            chosen.append(node)
        elif requested is not None:
            # Healthy machines are only worth a word when the event named them.
            reason = _SKIP_REASONS.get(status, f"agent status {status!r} is not a failed install")
            skipped.append(Skipped(node, status, reason))
    return tuple(chosen), skipped


def _parse_time(value: object) -> datetime | None:
    """``2026-12-03T10:00:00.000+0000`` (the API's form) to an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
