"""What the function sends is what the generated Elasticsearch client sends.

The generated client (``alibabacloud-elasticsearch20170613``) is too heavy to ship in
the function, so it serves here as the reference for path, query and body.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alibabacloud_elasticsearch20170613 import models
from alibabacloud_elasticsearch20170613.client import Client as ElasticsearchClient
from alibabacloud_tea_openapi.utils_models import Config

from index import handler
from tests.conftest import (
    COLLECTOR,
    NODE_1,
    NODE_2,
    STS_KEY_ID,
    STS_SECRET,
    STS_TOKEN,
    as_bytes,
)
from tests.emulators.collector_api import CollectorApiEmulator

# These tests are about the event and the token alone; the look at the live state
# before reinstalling, on by default, has tests of its own (test_live_state.py).
pytestmark = pytest.mark.usefixtures("without_live_state_check")


@pytest.mark.parametrize("signature_algorithm", [None, "v2"])
def test_handler_request_matches_the_generated_client(
    signature_algorithm: str | None,
    emulator: CollectorApiEmulator,
    fc_context: Callable[..., object],
) -> None:
    token = "reference-token-0001"
    reference = ElasticsearchClient(
        Config(
            access_key_id=STS_KEY_ID,
            access_key_secret=STS_SECRET,
            security_token=STS_TOKEN,
            endpoint=emulator.endpoint,
            protocol="HTTP",
            region_id="cn-hangzhou",
            signature_algorithm=signature_algorithm,
        )
    )
    reference.reinstall_collector(
        COLLECTOR,
        models.ReinstallCollectorRequest(
            client_token=token, body={"restartType": "nodeEcsId", "nodes": [NODE_1, NODE_2]}
        ),
    )
    handler(
        as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1, NODE_2], "ClientToken": token}),
        fc_context(),
    )

    theirs, ours = emulator.requests
    assert theirs.signature_valid
    assert ours.signature_valid
    assert (ours.method, ours.path, ours.query) == (theirs.method, theirs.path, theirs.query)
    assert ours.json() == theirs.json()
    assert ours.headers["x-acs-action"] == theirs.headers["x-acs-action"] == "ReinstallCollector"
    assert ours.headers["x-acs-version"] == theirs.headers["x-acs-version"] == "2017-06-13"
    assert ours.headers["content-type"].startswith("application/json")
    # The same token: the service saw one reinstall, replayed for the second request.
    assert len(emulator.effective_reinstalls()) == 1
