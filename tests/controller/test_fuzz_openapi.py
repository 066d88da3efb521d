"""Schema-driven fuzzing of the controller's OpenAPI: no input may produce a 5xx.

Every operation gets inputs that fit its schema (positive) and inputs that break it (negative).

The fuzzed controller only accepts loopback worker addresses (allowlist), so generated
`worker_name` values can never make it contact another machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from controller.api import create_app
from controller.server import BackgroundServer, free_port
from controller.settings import ControllerSettings

OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fuzzed_controller() -> Iterator[str]:
    port = free_port()
    settings_ = ControllerSettings(host="127.0.0.1", port=port, worker_allowlist="127.0.0.0/8",
                                   status_timeout_s=0.5, first_frame_timeout_s=1)
    with BackgroundServer(create_app(settings_), port=port, thread_name="fuzzed") as server:
        yield server.url
    print(f"\nschemathesis: {sum(OUTCOMES.values())} requests, "
          f"{OUTCOMES['5xx']} with a 5xx, by status class: {dict(OUTCOMES)}")


def test_no_input_makes_the_controller_fail(fuzzed_controller: str) -> None:
    schema = schemathesis.openapi.from_url(fuzzed_controller + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    server_errors = []
    plans = [(op, mode) for op in operations for mode in GenerationMode]
    for operation, mode in plans:

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=50, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call_it(case) -> None:
            response = case.call(timeout=10)
            OUTCOMES[f"{response.status_code // 100}xx"] += 1
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.path}: {response.status_code} "
                                     f"{response.text[:200]}")

        try:
            call_it()
        except Unsatisfiable:
            # An operation with no inputs has nothing that could break its schema.
            assert mode is GenerationMode.NEGATIVE, operation.label
    assert server_errors == []
