"""Context objects shaped like the ones Function Compute's Python runtimes pass.

``python3.9``/``python3.10`` give the role's STS credentials in ``context.credentials``;
``python3.12`` has no ``credentials`` (nor ``service``) attribute at all and puts
them in ``ALIBABA_CLOUD_*`` variables instead. ``__slots__`` keeps each class to the
attributes its runtime really has, so code that reads a missing one finds nothing.
"""

from __future__ import annotations

import uuid


class Credentials:
    __slots__ = ("access_key_id", "access_key_secret", "security_token")

    def __init__(self, access_key_id: str, access_key_secret: str, security_token: str) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token


class FunctionMeta:
    __slots__ = ("handler", "initializer", "memory", "name", "timeout")

    def __init__(self, timeout: int = 60) -> None:
        self.name = "collector-reinstall"
        self.handler = "index.handler"
        self.memory = 256
        self.timeout = timeout
        self.initializer = "index.initializer"


class ServiceMeta:
    __slots__ = ("log_project", "log_store", "name", "qualifier", "version_id")

    def __init__(self) -> None:
        self.name = "collector-reinstall"
        self.log_project = "collector-reinstall-logs"
        self.log_store = "function-logs"
        self.qualifier = "LATEST"
        self.version_id = ""


class Python310Context:
    """What ``python3.9`` and ``python3.10`` hand the handler."""

    __slots__ = ("account_id", "credentials", "function", "region", "request_id", "service")

    def __init__(
        self,
        credentials: Credentials,
        *,
        request_id: str | None = None,
        timeout: int = 60,
        region: str = "cn-hangzhou",
    ) -> None:
        self.request_id = request_id or str(uuid.uuid4())
        self.credentials = credentials
        self.function = FunctionMeta(timeout)
        self.service = ServiceMeta()
        self.region = region
        self.account_id = "1234567890123456"


class Python312Context:
    """What ``python3.12`` hands the handler: no credentials, no service."""

    __slots__ = ("account_id", "function", "region", "request_id")

    def __init__(
        self, *, request_id: str | None = None, timeout: int = 60, region: str = "cn-hangzhou"
    ) -> None:
        self.request_id = request_id or str(uuid.uuid4())
        self.function = FunctionMeta(timeout)
        self.region = region
        self.account_id = "1234567890123456"
