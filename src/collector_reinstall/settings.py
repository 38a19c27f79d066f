"""Settings, read from environment variables once per invocation.

Every variable is optional; the defaults suit a function deployed by the project's
``s.yaml``. None starts with ``FC_``: Function Compute reserves that prefix.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigurationError

REGION_PATTERN = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+){1,3}")
_HOST_PATTERN = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Endpoint:
    """Where API requests go: ``host`` (with an optional port) and ``protocol``."""

    host: str
    protocol: str = "HTTPS"


@dataclass(frozen=True)
class Settings:
    endpoint_override: Endpoint | None = None
    use_vpc_endpoint: bool = False
    default_region: str | None = None
    max_nodes_per_event: int = 500
    invocation_timeout_s: float = 60.0
    request_timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    max_attempts: int = 8
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 10.0
    log_level: str = "INFO"
    check_live_state: bool = True
    reinstall_uninstalled: bool = False
    sweep_grace_s: float = 600.0
    sweep_window_s: float = 1800.0
    sweep_rate_limit: float = 10.0
    sweep_collector_ids: tuple[str, ...] = ()
    sweep_collector_names: tuple[str, ...] = ()
    fanout_service: str | None = None
    fanout_function: str | None = None
    fanout_endpoint: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: the process environment).

        The process environment is read on every invocation, but parsed again only
        when it changed.
        """
        if environ is None:
            return _from_process_environment(frozenset(os.environ.items()))
        return cls._parse(environ)

    @classmethod
    def _parse(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            endpoint_override=_endpoint(env, "ES_ENDPOINT"),
            use_vpc_endpoint=_flag(env, "ES_USE_VPC_ENDPOINT", cls.use_vpc_endpoint),
            default_region=_region(env, "ES_REGION"),
            max_nodes_per_event=int(_number(env, "MAX_NODES_PER_EVENT", 500, 1, 10_000)),
            invocation_timeout_s=_number(env, "INVOCATION_TIMEOUT_SECONDS", 60.0, 1, 86_400),
            request_timeout_s=_number(env, "REQUEST_TIMEOUT_SECONDS", 10.0, 0.1, 600),
            connect_timeout_s=_number(env, "CONNECT_TIMEOUT_SECONDS", 3.0, 0.1, 60),
            max_attempts=int(_number(env, "MAX_ATTEMPTS", 8, 1, 100)),
            retry_base_delay_s=_number(env, "RETRY_BASE_DELAY_SECONDS", 0.5, 0, 60),
            retry_max_delay_s=_number(env, "RETRY_MAX_DELAY_SECONDS", 10.0, 0, 600),
            log_level=_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            check_live_state=_flag(env, "CHECK_LIVE_STATE", cls.check_live_state),
            reinstall_uninstalled=_flag(env, "REINSTALL_UNINSTALLED", cls.reinstall_uninstalled),
            sweep_grace_s=60 * _number(env, "SWEEP_GRACE_MINUTES", 10, 0, 1440),
            sweep_window_s=60 * _number(env, "SWEEP_WINDOW_MINUTES", 30, 1, 1440),
            sweep_rate_limit=_number(env, "SWEEP_RATE_LIMIT", 10, 0.1, 10_000),
            sweep_collector_ids=_list(env, "SWEEP_COLLECTOR_IDS"),
            sweep_collector_names=_list(env, "SWEEP_COLLECTOR_NAMES"),
            fanout_service=_raw(env, "FANOUT_SERVICE"),
            fanout_function=_raw(env, "FANOUT_FUNCTION"),
            fanout_endpoint=_fc_endpoint(env, "FANOUT_ENDPOINT"),
        )

    def endpoint_for(self, region: str) -> Endpoint:
        """The collector API endpoint for ``region``, unless ``ES_ENDPOINT`` overrides it."""
        if self.endpoint_override is not None:
            return self.endpoint_override
        product = "elasticsearch-vpc" if self.use_vpc_endpoint else "elasticsearch"
        return Endpoint(f"{product}.{region}.aliyuncs.com")


@functools.lru_cache(maxsize=4)
def _from_process_environment(items: frozenset[tuple[str, str]]) -> Settings:
    return Settings._parse(dict(items))


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _raw(env, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigurationError(name, value, "true or false")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(name, value, f"a number from {low} to {high}") from None
    if not low <= number <= high:
        raise ConfigurationError(name, value, f"a number from {low} to {high}")
    return number


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(env, name)
    if value is None:
        return default
    if value.upper() not in choices:
        raise ConfigurationError(name, value, "one of " + ", ".join(choices))
    return value.upper()


def _region(env: Mapping[str, str], name: str) -> str | None:
    value = _raw(env, name)
    if value is not None and not REGION_PATTERN.fullmatch(value):
        raise ConfigurationError(name, value, "a region id such as cn-hangzhou")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    value = _raw(env, name)
    if value is None:
        return ()
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _fc_endpoint(env: Mapping[str, str], name: str) -> str | None:
    """The FC API endpoint as ``aliyun-fc2`` takes it: a URL (HTTPS when no scheme)."""
    endpoint = _endpoint(env, name)
    if endpoint is None:
        return None
    return f"{endpoint.protocol.lower()}://{endpoint.host}"


def _endpoint(env: Mapping[str, str], name: str) -> Endpoint | None:
    """Accept ``host[:port]`` (HTTPS) or a URL with an ``http``/``https`` scheme."""
    value = _raw(env, name)
    if value is None:
        return None
    if "://" not in value:
        host, protocol = value, "HTTPS"
    else:
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or parts.path not in ("", "/"):
            raise ConfigurationError(name, value, "host[:port] or http(s)://host[:port]")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigurationError(name, value, "host[:port] or http(s)://host[:port]")
        host, protocol = parts.netloc, parts.scheme.upper()
    if not _HOST_PATTERN.fullmatch(host):
        raise ConfigurationError(name, value, "host[:port] or http(s)://host[:port]")
    return Endpoint(host, protocol)
