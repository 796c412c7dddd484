"""Weft's OpenLineage export validated against the official OpenLineage 2-0-2 JSON Schema.

The schemas in `schemas/openlineage/` are copied unchanged from OpenLineage/OpenLineage at
8f02abfb7a252783b95df79f443edb13959bf52c (`spec/OpenLineage.json`, `spec/facets/JobTypeJobFacet.json`,
`spec/facets/SchemaDatasetFacet.json`; Apache-2.0). Each RunEvent must validate against the
spec's RunEvent definition, and every facet against its own facet schema, with the spec's
cross-references resolved locally (no network).
"""

import datetime
import json
import uuid
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

SCHEMAS = Path(__file__).resolve().parent / "schemas" / "openlineage"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INSIGHTS = "urn:weft:product:customer-sales-insights"


def registry():
    resources = []
    for path in SCHEMAS.glob("*.json"):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], referencing.Resource.from_contents(contents)))
    return referencing.Registry().with_resources(resources)


def validator(ref: str):
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": ref}
    return jsonschema.Draft202012Validator(schema, registry=registry(), format_checker=jsonschema.FormatChecker())


def apply_examples(weft):
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        # Domains first: products name them.
        if path.name == "domain.yaml":
            weft.apply(path.read_text())
    for suffix in ("*.odcs.yaml", "*.odps.yaml"):
        for path in sorted(EXAMPLES.rglob(suffix)):
            weft.apply(path.read_text())


def check_event(event: dict):
    errors = sorted(validator("https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent").iter_errors(event), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    # The formats the schema names, checked here whatever format libraries are installed.
    uuid.UUID(event["run"]["runId"])
    datetime.datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
    job_type = event["job"]["facets"]["jobType"]
    assert not list(validator(job_type["_schemaURL"]).iter_errors(job_type))
    for dataset in event["inputs"] + event["outputs"]:
        assert dataset["namespace"].startswith("kafka://")
        for facet in dataset.get("facets", {}).values():
            assert not list(validator(facet["_schemaURL"]).iter_errors(facet)), facet


def test_product_lineage_validates_against_the_openlineage_schema(weft):
    apply_examples(weft)
    status, events = weft.request("GET", f"/api/v1/lineage/{INSIGHTS}/openlineage?depth=1")
    assert status == 200, events
    assert {e["job"]["name"] for e in events} == {
        INSIGHTS,
        "urn:weft:product:customers",
        "urn:weft:product:sales",
        "urn:weft:product:inventory",
    }
    for event in events:
        check_event(event)
    insights = next(e for e in events if e["job"]["name"] == INSIGHTS)
    assert {d["name"] for d in insights["inputs"]} == {"customers.customer-created.v1", "sales.orders.v1", "inventory.stock-levels.v1"}
    assert insights["inputs"][0]["namespace"] == f"kafka://{weft.bootstrap}"


def test_all_products_export_validates(weft):
    apply_examples(weft)
    status, events = weft.request("GET", "/api/v1/openlineage")
    assert status == 200, events
    assert len(events) == 4
    for event in events:
        check_event(event)
