"""A bounded schemathesis run against the service's own OpenAPI document: whatever it generates,
valid or not, the service never answers 500 and answers what the document promises.

Driven by hand with hypothesis (schemathesis's pytest plugin does not run under pytest 9): every
operation, positive and negative generation, a bounded number of examples each."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from uniembed.serve import ServeSettings, create_app  # noqa: E402

EXAMPLES = 25  # per operation and mode: bounded, about half a minute in all


@pytest.fixture(scope="module")
def schema(tiny_model, tmp_path_factory):
    from schemathesis.python.asgi import HOST  # the Host header schemathesis's test client sends

    settings = ServeSettings(
        model="tiny",
        collections=tmp_path_factory.mktemp("fuzz-collections"),
        max_inputs=64,
        allowed_hosts=(HOST,),
    )
    app = create_app(settings, encoder=tiny_model)
    app.state.service.start()  # the ASGI transport does not run the lifespan: install the model now
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.service.stop()


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"]
)
def test_no_generated_request_breaks_the_service(schema, mode):
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    fuzzed = 0
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case):
            # positive_data_acceptance is left out: the document cannot state the model's vocabulary
            # size or the configured limits, which answer 400/413 to schema-valid requests by design
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
            fuzzed += 1
        except (
            Unsatisfiable
        ):  # nothing to make invalid: no body, only free-form string path parameters
            assert mode is GenerationMode.NEGATIVE and len(operation.body) == 0
    assert (
        fuzzed == len(operations) if mode is GenerationMode.POSITIVE else fuzzed >= 5
    )  # every request body
