"""The credentials each API request is signed with, read afresh for every request.

Function Compute hands a function its role's STS credentials and rotates them while
an instance lives: on ``python3.9``/``python3.10`` in ``context.credentials`` of each
invocation, on ``python3.12`` in the ``ALIBABA_CLOUD_*`` variables. The SDK client is
built once per instance, so it is given this provider rather than fixed keys: each
signature uses the credentials of the invocation in progress. Outside FC (a laptop,
CI) the ``alibabacloud-credentials`` default chain answers.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from alibabacloud_credentials_api import ICredentialsProvider

if TYPE_CHECKING:
    from alibabacloud_credentials.provider import DefaultCredentialsProvider
    from alibabacloud_credentials.provider.refreshable import Credentials

PROVIDER_NAME = "function_compute"
_ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
_ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
_ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"


class FunctionCredentials(ICredentialsProvider):  # type: ignore[misc]
    """Credentials of the current invocation: its context, FC's variables, the default chain.

    The context is kept per thread, so that concurrent invocations in one instance
    each sign with their own.
    """

    def __init__(self) -> None:
        self._current = threading.local()
        self._default_chain: DefaultCredentialsProvider | None = None

    def use_context(self, context: object) -> None:
        """Sign this thread's next requests with ``context.credentials``, if it has them."""
        self._current.credentials = getattr(context, "credentials", None)

    def get_credentials(self) -> Credentials:
        # Imported here: an invocation whose event is rejected never gets this far,
        # and need not pay for loading the SDK.
        from alibabacloud_credentials.provider import DefaultCredentialsProvider
        from alibabacloud_credentials.provider.refreshable import Credentials

        from_context = _from_context(getattr(self._current, "credentials", None))
        if from_context is not None:
            return from_context
        # Read on every call, not at import: the variables change when FC rotates keys.
        access_key_id = os.environ.get(_ENV_ID)
        access_key_secret = os.environ.get(_ENV_SECRET)
        if access_key_id and access_key_secret:
            return Credentials(
                access_key_id=access_key_id,
                access_key_secret=access_key_secret,
                security_token=os.environ.get(_ENV_TOKEN) or None,
                provider_name=f"{PROVIDER_NAME}/environment",
            )
        if self._default_chain is None:
            self._default_chain = DefaultCredentialsProvider()
        found = self._default_chain.get_credentials()
        return Credentials(
            access_key_id=found.get_access_key_id(),
            access_key_secret=found.get_access_key_secret(),
            security_token=found.get_security_token(),
            provider_name=f"{PROVIDER_NAME}/{found.get_provider_name()}",
        )

    async def get_credentials_async(self) -> Credentials:
        return self.get_credentials()

    def get_provider_name(self) -> str:
        return PROVIDER_NAME


def _from_context(credentials: Any) -> Credentials | None:
    from alibabacloud_credentials.provider.refreshable import Credentials

    if credentials is None:
        return None
    access_key_id = getattr(credentials, "access_key_id", None) or getattr(
        credentials, "accessKeyId", None
    )
    access_key_secret = getattr(credentials, "access_key_secret", None) or getattr(
        credentials, "accessKeySecret", None
    )
    if not access_key_id or not access_key_secret:
        return None
    security_token = getattr(credentials, "security_token", None) or getattr(
        credentials, "securityToken", None
    )
    return Credentials(
        access_key_id=access_key_id,
        access_key_secret=access_key_secret,
        security_token=security_token or None,
        provider_name=f"{PROVIDER_NAME}/context",
    )
