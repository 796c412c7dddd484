"""Weft's schema registry against confluent-kafka's real `SchemaRegistryClient` and serdes.

Each test starts a real `weft serve` (the `weft` fixture from conftest.py) and points the
client at `http://HOST:PORT/registry`, unchanged, as a Kafka producer would. Together they
prove that the Confluent REST surface Weft serves is the one the client expects: ids,
versions, lookups, compatibility verdicts with messages, config, soft and hard deletes,
error codes, and the serializers' wire format (magic 0 + 4-byte big-endian schema id).
"""

import base64
import json
import struct
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytest.importorskip(
    "confluent_kafka.schema_registry",
    reason="needs confluent-kafka[schemaregistry,avro,json] (scripts/install-interop-deps)",
)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

ORDER_V1 = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["id"],
}
ORDER_V2_OPTIONAL = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "amount": {"type": "number"}, "note": {"type": "string"}},
    "required": ["id"],
}
ORDER_AMOUNT_STRING = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "amount": {"type": "string"}},
    "required": ["id"],
}
PAYMENT_AVRO_V1 = {
    "type": "record",
    "name": "Payment",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "int"}],
}
PAYMENT_AVRO_V2 = {
    "type": "record",
    "name": "Payment",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "cents", "type": "long"},
        {"name": "currency", "type": "string", "default": "EUR"},
    ],
}


def json_schema(value) -> Schema:
    return Schema(json.dumps(value), "JSON")


def avro_schema(value) -> Schema:
    return Schema(json.dumps(value), "AVRO")


@pytest.fixture
def registry_url(weft) -> str:
    """The registry's URL with the admin's credentials as userinfo, which
    `SchemaRegistryClient` sends as HTTP Basic auth (its default credentials source)."""
    host = weft.http.removeprefix("http://")
    return f"http://admin:{weft.admin_token}@{host}/registry"


@pytest.fixture
def client(registry_url) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry_url, "max.retries": 0})


def raw(method: str, url: str, body=None):
    """A plain HTTP call, for fields the client does not expose (verbose messages)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/vnd.schemaregistry.v1+json"} if data else {}
    parsed = urllib.parse.urlsplit(url)
    if parsed.username is not None:
        # urllib does not send userinfo: move it into an Authorization header.
        userinfo = base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode()
        headers["authorization"] = f"Basic {userinfo}"
        url = parsed._replace(netloc=parsed.hostname + (f":{parsed.port}" if parsed.port else "")).geturl()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def expect_error(call, http_status: int, error_code: int) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as caught:
        call()
    assert (caught.value.http_status_code, caught.value.error_code) == (http_status, error_code), caught.value.error_message
    return caught.value


def test_register_json_and_avro_then_read_them_back(client):
    assert set(client.get_schema_types()) >= {"JSON", "AVRO"}
    order_id = client.register_schema("orders-value", json_schema(ORDER_V1))
    payment_id = client.register_schema("payments-value", avro_schema(PAYMENT_AVRO_V1))
    assert order_id != payment_id

    fresh = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})  # no cache
    order = fresh.get_schema(order_id)
    assert (order.schema_type, json.loads(order.schema_str)) == ("JSON", ORDER_V1)
    payment = fresh.get_schema(payment_id)
    assert (payment.schema_type, json.loads(payment.schema_str)) == ("AVRO", PAYMENT_AVRO_V1)

    assert sorted(fresh.get_subjects()) == ["orders-value", "payments-value"]
    assert fresh.get_versions("orders-value") == [1]
    latest = fresh.get_latest_version("orders-value")
    assert (latest.schema_id, latest.version, latest.subject) == (order_id, 1, "orders-value")
    assert fresh.get_version("payments-value", 1).schema_id == payment_id
    assert fresh.get_subjects_by_schema_id(order_id) == ["orders-value"]
    assert [(v.subject, v.version) for v in fresh.get_schema_versions(order_id)] == [("orders-value", 1)]


def test_registration_is_idempotent_deduplicated_and_lookup_finds_it(client, registry_url):
    first = client.register_schema("orders-value", json_schema(ORDER_V1))
    again = SchemaRegistryClient({"url": registry_url}).register_schema("orders-value", json_schema(ORDER_V1))
    assert again == first
    # The same schema under another subject keeps its global id.
    assert client.register_schema("refunds-value", json_schema(ORDER_V1)) == first
    found = SchemaRegistryClient({"url": registry_url}).lookup_schema("refunds-value", json_schema(ORDER_V1))
    assert (found.schema_id, found.version, found.subject) == (first, 1, "refunds-value")
    expect_error(lambda: SchemaRegistryClient({"url": registry_url}).lookup_schema("refunds-value", json_schema(ORDER_V2_OPTIONAL)), 404, 40403)


def test_compatibility_verdicts_and_messages(client, registry_url):
    client.register_schema("orders-value", json_schema(ORDER_V1))
    # Under the default BACKWARD, an optional property is compatible (Weft takes writers as closed).
    assert client.test_compatibility("orders-value", json_schema(ORDER_V2_OPTIONAL)) is True
    assert client.test_compatibility_all_versions("orders-value", json_schema(ORDER_V2_OPTIONAL)) is True
    assert client.test_compatibility("orders-value", json_schema(ORDER_AMOUNT_STRING), version=1) is False

    status, verdict = raw(
        "POST",
        f"{registry_url}/compatibility/subjects/orders-value/versions/latest?verbose=true",
        {"schemaType": "JSON", "schema": json.dumps(ORDER_AMOUNT_STRING)},
    )
    assert status == 200
    assert verdict == {
        "is_compatible": False,
        "messages": ["amount: type changed number -> string; readers using the new schema cannot read old data"],
    }
    error = expect_error(lambda: client.register_schema("orders-value", json_schema(ORDER_AMOUNT_STRING)), 409, 409)
    assert "amount: type changed number -> string" in error.error_message

    assert client.register_schema("orders-value", json_schema(ORDER_V2_OPTIONAL)) > 0
    assert client.get_versions("orders-value") == [1, 2]

    # Avro: widening int -> long and adding a field with a default are backward compatible.
    client.register_schema("payments-value", avro_schema(PAYMENT_AVRO_V1))
    assert client.test_compatibility("payments-value", avro_schema(PAYMENT_AVRO_V2)) is True
    client.set_compatibility("payments-value", "FORWARD")
    assert client.test_compatibility("payments-value", avro_schema(PAYMENT_AVRO_V2)) is False


def test_config_and_mode(client):
    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(level="FULL") == {"compatibility": "FULL"}
    assert client.get_config().compatibility_level == "FULL"
    expect_error(lambda: client.get_compatibility("orders-value"), 404, 40408)
    client.set_compatibility("orders-value", "none")
    assert client.get_compatibility("orders-value") == "NONE"
    assert client.delete_config("orders-value").compatibility_level == "NONE"
    assert client.delete_config().compatibility_level == "FULL"
    assert client.get_compatibility() == "BACKWARD"
    expect_error(lambda: client.set_compatibility(level="SIDEWAYS"), 422, 42203)

    assert client.get_global_mode() == "READWRITE"
    assert client.update_mode("orders-value", "READONLY") == "READONLY"
    assert client.get_mode("orders-value") == "READONLY"
    expect_error(lambda: client.register_schema("orders-value", json_schema(ORDER_V1)), 422, 42205)
    assert client.delete_mode("orders-value") == "READONLY"
    expect_error(lambda: client.update_global_mode("SIDEWAYS"), 422, 42204)


def test_soft_and_hard_delete(client, registry_url):
    first = client.register_schema("orders-value", json_schema(ORDER_V1))
    client.register_schema("orders-value", json_schema(ORDER_V2_OPTIONAL))
    assert client.delete_version("orders-value", 1) == 1
    assert client.get_versions("orders-value") == [2]
    expect_error(lambda: client.delete_version("orders-value", 1), 404, 40406)
    expect_error(lambda: client.delete_subject("orders-value", permanent=True), 404, 40405)
    assert client.delete_subject("orders-value") == [2]
    expect_error(lambda: client.delete_subject("orders-value"), 404, 40404)
    assert client.get_subjects() == []
    assert client.get_subjects(deleted=True) == ["orders-value"]
    assert client.delete_subject("orders-value", permanent=True) == [1, 2]
    assert client.get_subjects(deleted=True) == []
    expect_error(lambda: client.get_versions("orders-value"), 404, 40401)
    # Ids are never reused: re-registering brings back the same id as version 1.
    again = SchemaRegistryClient({"url": registry_url})
    assert again.register_schema("orders-value", json_schema(ORDER_V1)) == first
    assert again.get_latest_version("orders-value").version == 1


def test_error_codes(client, registry_url):
    expect_error(lambda: client.get_schema(4242), 404, 40403)
    expect_error(lambda: client.get_latest_version("missing-value"), 404, 40401)
    client.register_schema("orders-value", json_schema(ORDER_V1))
    expect_error(lambda: client.get_version("orders-value", 7), 404, 40402)
    expect_error(lambda: client.register_schema("bad-value", Schema("{not json", "JSON")), 422, 42201)
    expect_error(lambda: client.register_schema("bad-value", Schema('{"type":"record","name":"R"}', "AVRO")), 422, 42201)
    expect_error(lambda: client.register_schema("proto-value", Schema('syntax = "proto3";', "PROTOBUF")), 422, 42201)
    assert raw("GET", f"{registry_url}/subjects/orders-value/versions/0")[1]["error_code"] == 42202
    status, body = raw("POST", f"{registry_url}/subjects/x/versions", {"schema": 5})
    assert (status, body["error_code"]) == (422, 422)
    huge = json.dumps({"type": "object", "description": "x" * (1024 * 1024)})
    expect_error(lambda: client.register_schema("huge-value", Schema(huge, "JSON")), 422, 42209)


def test_serializers_frame_values_with_weft_ids(registry_url):
    """The JSON Schema and Avro serializers register on first use and frame each value as
    magic 0 + big-endian id; the deserializers resolve that id back through Weft."""
    pytest.importorskip("fastavro", reason="needs confluent-kafka[avro] (scripts/install-interop-deps)")
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer

    client = SchemaRegistryClient({"url": registry_url})
    context = SerializationContext("orders", MessageField.VALUE)

    json_serializer = JSONSerializer(json.dumps(ORDER_V1), client)
    framed = json_serializer({"id": "o-1", "amount": 12.5}, context)
    magic, schema_id = struct.unpack(">bI", framed[:5])
    assert magic == 0
    assert client.get_latest_version("orders-value").schema_id == schema_id
    reader = JSONDeserializer(json.dumps(ORDER_V1), schema_registry_client=SchemaRegistryClient({"url": registry_url}))
    assert reader(framed, context) == {"id": "o-1", "amount": 12.5}

    payments = SerializationContext("payments", MessageField.VALUE)
    avro_serializer = AvroSerializer(client, json.dumps(PAYMENT_AVRO_V1))
    framed = avro_serializer({"id": "p-1", "cents": 250}, payments)
    magic, schema_id = struct.unpack(">bI", framed[:5])
    assert magic == 0
    assert client.get_latest_version("payments-value").schema_id == schema_id
    reader = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    assert reader(framed, payments) == {"id": "p-1", "cents": 250}
