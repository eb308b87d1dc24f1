"""Fuzz the API from its own OpenAPI document: no 5xx, every response matches the schema.

Schemathesis generates the requests (valid and invalid) from /openapi.json; hypothesis runs a
bounded, derandomised number of them per operation against the real Flask app.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Schemathesis leaves out the document's own endpoint; test_service covers it.
OPERATIONS = ["GET /v1/related", "POST /v1/related", "POST /v1/related/batch",
              "GET /v1/model", "GET /healthz", "GET /readyz"]


def test_spec_lists_every_operation(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    found = {f"{op.ok().method.upper()} {op.ok().path}" for op in schema.get_all_operations()}
    assert found == set(OPERATIONS)


CASES = [(op, schemathesis.GenerationMode.POSITIVE) for op in OPERATIONS] + [
    (op, schemathesis.GenerationMode.NEGATIVE)  # only operations that take input
    for op in ("GET /v1/related", "POST /v1/related", "POST /v1/related/batch")]


@pytest.mark.parametrize("operation,mode", CASES)
def test_operation_conforms_under_fuzzing(app, operation, mode):
    method, path = operation.split(" ")
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    op = schema[path][method]

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        # Plain bodies: the WSGI client does not decode compressed ones (test_service
        # checks that compressed answers decode to the same JSON).
        case.call_and_validate(headers={"Accept-Encoding": "identity"}, checks=CHECKS)

    run()
