"""No stored bytes can poison a reader: whatever a producer sends, over HTTP in any mode or
over Kafka as a raw record, every reader (fetch, SSE live tail, group poll, dead-letter
listing) answers with a body that is valid UTF-8 JSON, and the event it shows is exactly
what was sent.

The oracle is the bytes sent. A value that is valid UTF-8 JSON under a JSON content type
comes back as `data` equal (as parsed JSON) to what was sent; a text content type with valid
UTF-8 comes back as a `data` string; anything else comes back as `data_base64` whose
decoding is the stored bytes. Over HTTP, JSON whose bytes are not valid UTF-8 is refused
with `event.malformed_json`, and JSON whose objects repeat a key with `event.duplicate_key`;
nothing is ever answered with a 5xx.

Each example sends one generated value through both edges, in every mode, to a new stream
without a contract and to a governed stream (a one-field contract, so a near-JSON value
sometimes passes it) shared by examples; every reader must show exactly the events the
example stored, from the offset where it began, and the dead-letter listing must end with
exactly the example's refusals.
Hypothesis runs derandomized, so a failure replays the same examples on the next run.
"""

import base64
import http.client
import itertools
import json
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WeftServer

CLIENT_DEADLINE_S = 10.0
EXAMPLES_MAX = 150
VALUE_BYTES_MAX = 64
JSON_DEPTH_SERVER_MAX = 100
MALFORMED_JSON = "event.malformed_json"
DUPLICATE_KEY = "event.duplicate_key"
UNSUPPORTED_CONTENT_TYPE = "event.unsupported_content_type"
KAFKA_INVALID_RECORD = 87
BINARY_HEADERS = {"ce-specversion": "1.0", "ce-id": "poison-1", "ce-source": "/poison", "ce-type": "poison"}
BINARY_CONTENT_TYPES = ["application/json", "application/octet-stream", "text/plain"]
ATTRIBUTES_PREFIX = b'{"specversion":"1.0","id":"poison-1","source":"/poison","type":"poison","datacontenttype":"application/json","data":'

GOVERNED_MESH = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:poison-{n}
name: Poison {n}
version: 1.0.0
status: active
domain: lab
servers:
  - server: weft
    type: kafka
    host: localhost
    format: json
schema:
  - name: Probe
    physicalType: topic
    physicalName: lab.p{n}.v1
    customProperties:
      - property: weft.partitions
        value: 1
    properties:
      - name: k
        logicalType: string
        required: true
---
apiVersion: v1.0.0
kind: DataProduct
id: lab.p{n}
status: active
domain: lab
outputPorts:
  - name: probe
    version: 1.0.0
    contractId: urn:test:poison-{n}
"""


# The classification of sent bytes, the oracle's input.

STRICT = "strict"  # valid UTF-8, strict JSON: must be accepted and come back equal
AMBIGUOUS = "ambiguous"  # JSON with lone surrogate escapes, numbers past f64 or nesting past the server's limit
INVALID_UTF8 = "invalid_utf8"  # not valid UTF-8 at all
NOT_JSON = "not_json"  # valid UTF-8 but not JSON


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    return False


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def classify(value: bytes):
    """(class, parsed JSON or None)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return INVALID_UTF8, None
    try:
        parsed = json.loads(text, parse_constant=reject_constant)
    except (ValueError, RecursionError):
        return NOT_JSON, None
    if has_lone_surrogate(parsed) or depth(parsed) > JSON_DEPTH_SERVER_MAX or "inf" in repr(parsed):
        return AMBIGUOUS, parsed
    return STRICT, parsed


def has_duplicate_keys(text: str) -> bool:
    found = []

    def pairs(items):
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            found.append(keys)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return bool(found)


def repeats_a_key(kind, value: bytes) -> bool:
    """JSON whose objects repeat a key, which Weft refuses on every HTTP produce path
    (`event.duplicate_key`, or `event.malformed_json` when the parser met another problem first)."""
    return kind in (STRICT, AMBIGUOUS) and has_duplicate_keys(value.decode())


def contract_verdict(value: bytes):
    """True when the one-field contract must accept the value, False when it must refuse it
    with a `contract.*` code, None when the test does not predict (numbers past f64,
    duplicate keys, lone surrogates, deep nesting: parsers may differ there)."""
    kind, parsed = classify(value)
    if kind != STRICT:
        return None
    text = value.decode()
    if has_duplicate_keys(text) or depth(parsed) > 20 or "inf" in repr(parsed):
        return None
    return isinstance(parsed, dict) and isinstance(parsed.get("k"), str)


def media_essence(content_type):
    return None if content_type is None else content_type.split(";")[0].strip().lower()


def is_json_content_type(content_type) -> bool:
    essence = media_essence(content_type)
    return essence is None or essence in ("application/json", "text/json") or essence.endswith("+json")


def is_text_content_type(content_type) -> bool:
    essence = media_essence(content_type)
    return essence is not None and (
        essence.startswith("text/") or essence.endswith("+xml") or essence in ("application/xml", "application/yaml")
    )


def expected_forms(content_type, value: bytes) -> list:
    """The renderings of a stored value that the documented rules allow."""
    if value is None:
        return [("absent", None)]
    forms = []
    kind, parsed = classify(value)
    if is_json_content_type(content_type) and kind in (STRICT, AMBIGUOUS):
        forms.append(("data", parsed))
    if is_json_content_type(content_type) and kind == STRICT:
        return forms
    if is_text_content_type(content_type) and kind != INVALID_UTF8:
        forms.append(("data", value.decode()))
    else:
        forms.append(("data_base64", value))
    if value == b"":
        forms.append(("absent", None))
    return forms


def rendered_form(event: dict):
    assert not ("data" in event and "data_base64" in event), event
    if "data" in event:
        return "data", event["data"]
    if "data_base64" in event:
        return "data_base64", base64.b64decode(event["data_base64"], validate=True)
    return "absent", None


# HTTP without json.loads hidden inside: the raw body is what the test checks.


def parse_json_body(raw: bytes, what: str):
    """Every response body must be UTF-8 and JSON: this is the property under test."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise AssertionError(f"{what}: response body is not valid UTF-8 ({error}): {raw[:300]!r}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise AssertionError(f"{what}: response body is not JSON ({error}): {raw[:300]!r}") from None


def raw_request(weft, method, path, body=None, headers=None):
    all_headers = {"authorization": f"Bearer {weft.admin_token}", **(headers or {})}
    req = urllib.request.Request(f"{weft.http}{path}", data=body, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=CLIENT_DEADLINE_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def read_json(weft, method, path, body=None, headers=None):
    status, raw = raw_request(weft, method, path, body, headers)
    reply = parse_json_body(raw, f"{method} {path}")
    assert status < 500, (status, reply)
    return status, reply


def sse_events(weft, stream: str, start_offset: int, n_wanted: int, one_line_each=False) -> list:
    """The first `n_wanted` events of the live tail from `start_offset` of partition 0 (a
    `Last-Event-ID` names the event before it). An event's `data:` lines are joined with
    newlines, as EventSource does, and must be UTF-8 JSON; with `one_line_each`, each event
    must also be a single `data:` line, which line-oriented readers need."""
    if n_wanted == 0:
        return []
    headers = {"authorization": f"Bearer {weft.admin_token}"}
    if start_offset > 0:
        headers["last-event-id"] = f"0:{start_offset - 1}"
    conn = http.client.HTTPConnection("127.0.0.1", weft.http_port, timeout=CLIENT_DEADLINE_S)
    try:
        conn.request("GET", f"/api/v1/streams/{stream}/live?from=earliest", headers=headers)
        response = conn.getresponse()
        assert response.status == 200, (response.status, response.read())
        events = []
        data_lines = []
        while len(events) < n_wanted:
            line = response.readline()
            assert line, f"live tail of {stream} ended after {len(events)} of {n_wanted} events"
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data_lines.append(line[len(b"data:") :].removeprefix(b" "))
            elif line == b"" and data_lines:
                if one_line_each:
                    assert len(data_lines) == 1, (f"live tail of {stream}: an event spans {len(data_lines)} data lines", data_lines)
                events.append(parse_json_body(b"\n".join(data_lines), f"live tail of {stream}, data of one event"))
                data_lines = []
        return events
    finally:
        conn.close()


# Sending, and what each send promises.


class Expectations:
    """What one example sent to one stream: stored events by offset, and dead letters in order."""

    def __init__(self, stream: str, start_offset: int = 0):
        self.stream = stream
        self.start_offset = start_offset
        self.stored = {}  # offset -> (what, content_type, value, key)
        self.dead_letters = []  # (what, candidate stored byte strings)

    def accepted(self, what, offset, content_type, value, key=None):
        assert offset not in self.stored, (what, offset, self.stored[offset])
        self.stored[offset] = (what, content_type, value, key)


def first_error(reply):
    return reply.get("error") or {}


def result_errors(reply):
    return [result.get("error") for result in reply.get("results", [])]


def confluent_framed(value: bytes) -> bool:
    """A governed stream reads a value that starts with a zero byte and a 4-byte schema id as
    Confluent's wire framing, and refuses an unknown id with a `schema.*` code."""
    return value[:1] == b"\x00" and len(value) >= 5


def malformed_code(code, value, governed) -> bool:
    return code == MALFORMED_JSON or governed and confluent_framed(value) and (code or "").startswith("schema.")


def check_single_event_reply(what, status, reply, kind, governed, verdict, expect, value, content_type):
    """Single-event modes (plain JSON, binary with a JSON type): one event, 200 or 4xx."""
    repeated = is_json_content_type(content_type) and repeats_a_key(kind, value)
    if status == 200:
        assert kind in (STRICT, AMBIGUOUS) or not is_json_content_type(content_type), (what, status, reply, kind)
        assert not repeated, (what, "JSON with a repeated key must be refused", reply)
        assert verdict is not False, (what, "the contract must refuse this", reply)
        expect.accepted(what, reply["results"][0]["offset"], content_type, value)
        return
    assert 400 <= status < 500, (what, status, reply)
    code = first_error(reply).get("code")
    if repeated:
        assert code in (DUPLICATE_KEY, MALFORMED_JSON), (what, reply)
    elif kind == INVALID_UTF8 and is_json_content_type(content_type):
        assert malformed_code(code, value, governed), (what, "invalid UTF-8 in JSON must be refused as malformed json", reply)
    elif kind == STRICT and not governed and is_json_content_type(content_type):
        raise AssertionError((what, "valid JSON must be accepted on a stream without a contract", reply))
    elif kind == NOT_JSON and is_json_content_type(content_type):
        assert malformed_code(code, value, governed), (what, reply)
    elif not governed:
        assert kind == AMBIGUOUS and code == MALFORMED_JSON, (what, reply)
    if governed:
        assert verdict is not True, (what, "the contract must accept this", reply)
        if verdict is False:
            assert (code or "").startswith("contract."), (what, reply)
        if not is_json_content_type(content_type):
            assert code == UNSUPPORTED_CONTENT_TYPE, (what, reply)
        if "dead_letter" in first_error(reply):
            expect.dead_letters.append((what, [value]))


def send_plain_json(weft, stream, value, governed, expect):
    what = f"application/json produce of {value!r}"
    status, reply = read_json(weft, "POST", f"/api/v1/streams/{stream}/events", value, {"content-type": "application/json"})
    kind, _ = classify(value)
    check_single_event_reply(what, status, reply, kind, governed, contract_verdict(value) if governed else None, expect, value, "application/json")


def send_binary(weft, stream, value, content_type, governed, expect):
    what = f"binary-mode {content_type} produce of {value!r}"
    status, reply = read_json(weft, "POST", f"/api/v1/streams/{stream}/events", value, {"content-type": content_type, **BINARY_HEADERS})
    kind, _ = classify(value)
    if not is_json_content_type(content_type):
        if governed:
            assert 400 <= status < 500 and first_error(reply).get("code") == UNSUPPORTED_CONTENT_TYPE, (what, status, reply)
            if "dead_letter" in first_error(reply):
                expect.dead_letters.append((what, [value]))
        else:
            assert status == 200, (what, "any bytes are valid data of a non-JSON content type", status, reply)
            expect.accepted(what, reply["results"][0]["offset"], content_type, value)
        return
    check_single_event_reply(what, status, reply, kind, governed, contract_verdict(value) if governed else None, expect, value, content_type)


def ndjson_lines(body: bytes) -> list:
    """The events the server cuts an NDJSON body into: lines, trimmed of ASCII whitespace."""
    lines = []
    for line in body.split(b"\n"):
        line = line.removesuffix(b"\r").strip(b" \t\n\r\x0c")
        if line:
            lines.append(line)
    return lines


def send_ndjson(weft, stream, value, governed, expect):
    what = f"application/x-ndjson produce of {value!r}"
    status, reply = read_json(weft, "POST", f"/api/v1/streams/{stream}/events", value, {"content-type": "application/x-ndjson"})
    lines = ndjson_lines(value)
    kinds = [classify(line)[0] for line in lines]
    if status != 200:
        # Refusing the whole request is allowed only for a body holding invalid UTF-8.
        assert 400 <= status < 500 and (INVALID_UTF8 in kinds or not lines), (what, status, reply)
        assert not lines or first_error(reply).get("code") == MALFORMED_JSON, (what, reply)
        return
    results = reply["results"]
    assert len(results) == len(lines), (what, lines, reply)
    for line, kind, result in zip(lines, kinds, results):
        line_what = f"{what}, line {line!r}"
        verdict = contract_verdict(line) if governed else None
        error = result.get("error")
        repeated = repeats_a_key(kind, line)
        if error is None:
            assert kind in (STRICT, AMBIGUOUS), (line_what, "only JSON lines may be stored", result)
            assert not repeated, (line_what, "JSON with a repeated key must be refused", result)
            assert verdict is not False, (line_what, "the contract must refuse this", result)
            expect.accepted(line_what, result["offset"], "application/json", line)
            continue
        if repeated:
            assert error["code"] in (DUPLICATE_KEY, MALFORMED_JSON), (line_what, result)
        elif kind == STRICT and not governed:
            raise AssertionError((line_what, "valid JSON must be accepted on a stream without a contract", result))
        if kind in (INVALID_UTF8, NOT_JSON):
            assert malformed_code(error["code"], line, governed), (line_what, result)
        if governed:
            assert verdict is not True, (line_what, "the contract must accept this", result)
            if verdict is False:
                assert error["code"].startswith("contract."), (line_what, result)
            if "dead_letter" in error:
                expect.dead_letters.append((line_what, [line]))


def send_structured(weft, stream, value, governed, expect, batched):
    """The value is spliced in as `data` of a JSON-format event, so the envelope holds
    whatever the value holds."""
    body = ATTRIBUTES_PREFIX + value + b"}"
    content_type = "application/cloudevents-batch+json" if batched else "application/cloudevents+json"
    if batched:
        body = b"[" + body + b"]"
    what = f"{content_type} produce with data {value!r}"
    status, reply = read_json(weft, "POST", f"/api/v1/streams/{stream}/events", body, {"content-type": content_type})
    body_kind, parsed = classify(body)
    element = (parsed[0] if parsed else None) if batched and isinstance(parsed, list) and len(parsed) == 1 else parsed
    plain = (
        body_kind == STRICT
        and not has_duplicate_keys(body.decode())
        and isinstance(element, dict)
        and set(element) == {"specversion", "id", "source", "type", "datacontenttype", "data"}
    )
    data_verdict = contract_verdict(value) if governed else None
    if body_kind == INVALID_UTF8:
        assert 400 <= status < 500, (what, "invalid UTF-8 in JSON must be refused", status, reply)
        # A batch that is not a JSON array at all is refused as a request (`request.malformed_json`).
        codes = {first_error(reply).get("code")} | {e.get("code") for e in result_errors(reply) if e}
        assert MALFORMED_JSON in codes or (batched and "request.malformed_json" in codes), (what, reply)
    results = reply.get("results") or [{}]
    if status == 200 and "error" not in results[0]:
        assert body_kind in (STRICT, AMBIGUOUS), (what, "only JSON may be stored", reply)
        if plain:
            assert data_verdict is not False, (what, "the contract must refuse this", reply)
            # `data` is stored as its JSON text, without the whitespace around it.
            data = value.strip(b" \t\n\r")
            expect.accepted(what, results[0]["offset"], "application/json", None if data == b"null" else data)
        else:
            expect.accepted(what, results[0]["offset"], "*", None)
        return
    assert 400 <= status < 500 or status == 200 and batched, (what, status, reply)
    if plain and not governed:
        raise AssertionError((what, "a valid event must be accepted on a stream without a contract", status, reply))
    if governed and plain:
        assert data_verdict is not True, (what, "the contract must accept this", reply)
    errors = [first_error(reply)] + [e for e in result_errors(reply) if e]
    if any("dead_letter" in e for e in errors):
        expect.dead_letters.append((what, [value, value.strip(b" \t\n\r"), body, body[1:-1]]))


def kafka_send(producer, stream, value, key=None, headers=None):
    reports = []
    kwargs = {"value": value, "on_delivery": lambda err, msg: reports.append((err, msg))}
    if key is not None:
        kwargs["key"] = key
    if headers:
        kwargs["headers"] = headers
    producer.produce(stream, **kwargs)
    # One record per flush, so that each record is its own batch and is refused alone.
    assert producer.flush(CLIENT_DEADLINE_S) == 0, "record still queued after the deadline"
    assert len(reports) == 1, reports
    return reports[0]


def header_content_type(value: bytes):
    """The content type the renderer reads from a `content-type` header: none unless UTF-8."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def send_kafka(producer, stream, value, key, header_value, content_type_header, governed, expect):
    variants = [
        ("kafka record without headers", None, None, None),
        ("kafka record with content-type application/json", None, [("content-type", b"application/json")], "application/json"),
        (
            "kafka record with a random key and header values",
            key,
            [("x-poison", header_value), ("content-type", content_type_header)],
            header_content_type(content_type_header),
        ),
    ]
    for what, variant_key, headers, content_type in variants:
        what = f"{what} {value!r} (key {variant_key!r}, headers {headers!r})"
        err, msg = kafka_send(producer, stream, value, variant_key, headers)
        # The test predicts the contract only for JSON content types; whether the Kafka edge
        # refuses other types on a governed stream is not what this test is about.
        verdict = contract_verdict(value) if governed and is_json_content_type(content_type) else None
        if err is None:
            assert verdict is not False, (what, "the contract must refuse this")
            expect.accepted(what, msg.offset(), content_type, value, variant_key)
            continue
        assert governed and err.code() == KAFKA_INVALID_RECORD, (what, str(err))
        assert verdict is not True, (what, "the contract must accept this", str(err))
        expect.dead_letters.append((what, [value]))


# Reading back, through every reader.


def check_envelope(where, envelope, expect):
    offset = envelope["offset"]
    assert offset in expect.stored, (where, "an event nobody sent", envelope)
    what, content_type, value, key = expect.stored[offset]
    event = envelope["event"]
    assert isinstance(event, dict), (where, what, envelope)
    if content_type == "*":
        return
    got = rendered_form(event)
    allowed = expected_forms(content_type, value)
    assert got in allowed, (where, what, "rendered as", got, "allowed", allowed, envelope)
    if key is not None:
        try:
            text_key = key.decode("utf-8")
        except UnicodeDecodeError:
            text_key = None
        if text_key is not None:
            assert envelope["key"] == text_key or (key == b"" and envelope["key"] is None), (where, what, envelope)
        else:
            assert envelope["key"] is None and base64.b64decode(envelope["key_base64"]) == key, (where, what, envelope)


def check_readers(weft, expect, group):
    """Fetch, live tail and a new group's poll show exactly the example's stored events
    (those at or past its start offset), each rendered as sent."""
    stream, start = expect.stream, expect.start_offset
    wanted = sorted(expect.stored)
    _, fetched = read_json(weft, "GET", f"/api/v1/streams/{stream}/events?partition=0&offset={start}&limit=1000")
    fetched = fetched["events"]
    assert [e["offset"] for e in fetched] == wanted, ("fetch", stream, fetched, expect.stored)
    for envelope in fetched:
        check_envelope("fetch", envelope, expect)

    live = sse_events(weft, stream, start, len(wanted))
    assert [e["offset"] for e in live] == wanted, ("live tail", stream, live, expect.stored)
    for envelope in live:
        check_envelope("live tail", envelope, expect)

    # A new group starts at the earliest offset: earlier examples' events come first.
    poll_body = json.dumps({"member": "m-1", "max_events": 1000}).encode()
    status, polled = read_json(weft, "POST", f"/api/v1/streams/{stream}/groups/{group}/poll", poll_body, {"content-type": "application/json"})
    assert status == 200, polled
    ours = [e for e in polled["events"] if e["offset"] >= start]
    assert [e["offset"] for e in ours] == wanted, ("group poll", stream, polled, expect.stored)
    for envelope in ours:
        check_envelope("group poll", envelope, expect)


def dead_letter_forms(candidate: bytes) -> list:
    """Dead letters render by the bytes alone (the listing does not know the content type)."""
    kind, parsed = classify(candidate)
    forms = [("data_base64", candidate)]
    if kind in (STRICT, AMBIGUOUS):
        forms.append(("data", parsed))
    if kind != INVALID_UTF8:
        forms.append(("data", candidate.decode()))
    if candidate == b"":
        forms.append(("absent", None))
    return forms


def check_dead_letters(weft, product, expect, n_before):
    """The listing ends with exactly the example's refusals, in the order they were sent."""
    _, reply = read_json(weft, "GET", f"/api/v1/products/{product}/dead-letters?list=true&limit=1000")
    letters = [letter for entry in reply["streams"] for letter in entry["dead_letters"]][n_before:]
    assert len(letters) == len(expect.dead_letters), ("dead letters", [w for w, _ in expect.dead_letters], letters)
    for letter, (what, candidates) in zip(letters, expect.dead_letters):
        got = rendered_form(letter)
        allowed = [form for candidate in candidates for form in dead_letter_forms(candidate)]
        assert got in allowed, ("dead letter", what, "rendered as", got, "allowed", allowed, letter)
        assert all(isinstance(v, str) for v in letter["attributes"].values()), letter


# The generator: arbitrary bytes, biased toward near-JSON.

POISON_PIECES = [
    b"\xff",
    b"\xfe",
    b"\x80",  # a lone continuation byte
    b"\xc3",  # a truncated two-byte sequence
    b"\xe2\x82",  # a truncated three-byte sequence
    b"\xed\xa0\x80",  # an encoded high surrogate
    b"\xed\xbf\xbf",  # an encoded low surrogate
    b"\xc0\xaf",  # an overlong '/'
    b"\xe0\x80\xaf",  # an overlong '/', three bytes
    b"\xf0\x80\x80\xaf",  # an overlong '/', four bytes
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\x00",
    b"\\u0000",
    b"\\ud800",  # a lone high surrogate escape
    b"\\udfff",  # a lone low surrogate escape
    b"\\ud83d\\ude00",  # a valid pair
    b"\\uDBFF\\uDFFF",  # U+10FFFF as a pair
    "\U0010ffff".encode(),
    "\u2028é😀".encode(),
    b"\\",
    b'"',
    b"\n",
    b"\r\n",
    b"\t",
    b"NaN",
    b"1e400",
]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_documents = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)
payment_like = st.builds(lambda k, extra: {"k": k, **extra}, st.text(max_size=8), st.dictionaries(st.text(max_size=3), json_scalars, max_size=2))
poison = st.sampled_from(POISON_PIECES) | st.binary(min_size=1, max_size=4)


@st.composite
def json_bytes(draw):
    document = draw(payment_like | json_documents)
    return json.dumps(document, ensure_ascii=draw(st.booleans())).encode()


@st.composite
def spliced_into_a_string(draw):
    """A contract-shaped object whose string `k` holds poison: the fuzzer's finding."""
    pieces = draw(st.lists(poison | st.text(max_size=3).map(str.encode), min_size=1, max_size=4))
    return b'{"k":"' + b"".join(pieces) + b'"' + draw(st.sampled_from([b"", b',"n":1'])) + b"}"


@st.composite
def spliced_anywhere(draw):
    document = draw(json_bytes())
    at = draw(st.integers(0, len(document)))
    return document[:at] + draw(poison) + document[at:]


@st.composite
def truncated(draw):
    document = draw(json_bytes())
    return document[: draw(st.integers(0, max(0, len(document) - 1)))]


near_json = st.one_of(json_bytes(), spliced_into_a_string(), spliced_anywhere(), truncated(), st.binary(max_size=VALUE_BYTES_MAX))
values = near_json | st.lists(near_json, min_size=2, max_size=3).map(b"\n".join)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: each example makes its own streams on it."""
    root = tmp_path_factory.mktemp("poison")
    weft = WeftServer(root / "data", root / "weft.log")
    weft.start()
    weft.apply("apiVersion: weft/v1\nkind: Domain\nname: lab\nowners: [admin]\n")
    yield weft
    weft.stop()


@pytest.fixture(scope="module")
def producer(server):
    p = Producer(server.kafka_config(**{"linger.ms": 0, "message.timeout.ms": int(CLIENT_DEADLINE_S * 1000)}))
    yield p
    p.flush(CLIENT_DEADLINE_S)


EXAMPLE_IDS = itertools.count()
GOVERNED_IDS = itertools.count()
DEAD_LETTERS_PER_GOVERNED_STREAM_MAX = 500


class GovernedStream:
    """The governed stream examples share: a contract per example would make each apply
    slower than the example, so one is shared until its dead letters near the listing's
    page, then the next is applied. Each example starts from the stream's current end."""

    def __init__(self):
        self.n = None

    def current(self, weft):
        if self.n is None or self.n_dead_letters(weft) > DEAD_LETTERS_PER_GOVERNED_STREAM_MAX:
            self.n = next(GOVERNED_IDS)
            weft.apply(GOVERNED_MESH.format(n=self.n))
        return f"lab.p{self.n}.v1", f"lab.p{self.n}"

    def n_dead_letters(self, weft):
        _, reply = read_json(weft, "GET", f"/api/v1/products/lab.p{self.n}/dead-letters")
        return reply["streams"][0]["total"]


def next_offset(weft, stream):
    _, reply = read_json(weft, "GET", f"/api/v1/streams/{stream}")
    return reply["offsets"][0]["next_offset"]


def send_everywhere(weft, producer, expect, value, key, header_value, content_type_header, governed):
    stream = expect.stream
    send_plain_json(weft, stream, value, governed, expect)
    send_ndjson(weft, stream, value, governed, expect)
    send_structured(weft, stream, value, governed, expect, batched=False)
    send_structured(weft, stream, value, governed, expect, batched=True)
    for content_type in BINARY_CONTENT_TYPES:
        send_binary(weft, stream, value, content_type, governed, expect)
    send_kafka(producer, stream, value, key, header_value, content_type_header, governed, expect)


def send_everywhere_and_read_back(weft, producer, governed_stream, value, key, header_value, content_type_header):
    n = next(EXAMPLE_IDS)
    free = Expectations(f"free.e{n}")
    weft.create_stream(free.stream)
    send_everywhere(weft, producer, free, value, key, header_value, content_type_header, governed=False)
    check_readers(weft, free, group=f"g{n}")

    stream, product = governed_stream.current(weft)
    governed = Expectations(stream, start_offset=next_offset(weft, stream))
    n_dead_letters_before = governed_stream.n_dead_letters(weft)
    send_everywhere(weft, producer, governed, value, key, header_value, content_type_header, governed=True)
    check_readers(weft, governed, group=f"g{n}")
    check_dead_letters(weft, product, governed, n_dead_letters_before)


@pytest.fixture(scope="module")
def governed_stream(server):
    return GovernedStream()


@settings(
    max_examples=EXAMPLES_MAX,
    report_multiple_bugs=False,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    value=values,
    key=st.binary(max_size=8) | st.sampled_from(POISON_PIECES),
    header_value=st.binary(max_size=8) | st.sampled_from(POISON_PIECES),
    content_type_header=st.sampled_from([b"application/json", b"text/plain", b"application/octet-stream", b"text/\xff"]) | st.binary(max_size=6),
)
def test_no_stored_bytes_poison_any_reader(server, producer, governed_stream, value, key, header_value, content_type_header):
    send_everywhere_and_read_back(server, producer, governed_stream, value, key, header_value, content_type_header)


# The fuzzer's findings, one plain test each.

FOUND_BY_THE_FUZZER = [b'{"k":"a\xff"}', b'{"k":"\xed\xa0\x80"}']
JSON_MODES = [
    ("application/json", {"content-type": "application/json"}),
    ("application/x-ndjson", {"content-type": "application/x-ndjson"}),
    ("binary mode, application/json", {"content-type": "application/json", **BINARY_HEADERS}),
]


@pytest.mark.parametrize("value", FOUND_BY_THE_FUZZER, ids=["invalid_byte", "encoded_surrogate"])
@pytest.mark.parametrize("mode,headers", JSON_MODES, ids=["json", "ndjson", "binary"])
def test_invalid_utf8_json_over_http_is_refused_as_malformed_json(server, value, mode, headers):
    stream = f"refuse.e{next(EXAMPLE_IDS)}"
    server.create_stream(stream)
    status, reply = read_json(server, "POST", f"/api/v1/streams/{stream}/events", value, headers)
    codes = {first_error(reply).get("code")} | {e.get("code") for e in result_errors(reply) if e}
    assert MALFORMED_JSON in codes, (mode, status, reply)
    assert status == 400 or (mode == "application/x-ndjson" and status == 200 and reply["accepted"] == 0), (mode, status, reply)
    _, fetched = read_json(server, "GET", f"/api/v1/streams/{stream}/events?partition=0&offset=0")
    assert fetched["events"] == [], (mode, "a refused event must not be stored", fetched)


@pytest.mark.parametrize("value", FOUND_BY_THE_FUZZER, ids=["invalid_byte", "encoded_surrogate"])
@pytest.mark.parametrize("mode", ["application/cloudevents+json", "application/cloudevents-batch+json"], ids=["structured", "batched"])
def test_invalid_utf8_in_a_json_format_event_is_refused(server, value, mode):
    stream = f"refuse.e{next(EXAMPLE_IDS)}"
    server.create_stream(stream)
    body = ATTRIBUTES_PREFIX + value + b"}"
    body = b"[" + body + b"]" if mode.endswith("batch+json") else body
    status, reply = read_json(server, "POST", f"/api/v1/streams/{stream}/events", body, {"content-type": mode})
    codes = {first_error(reply).get("code")} | {e.get("code") for e in result_errors(reply) if e}
    # A batch whose bytes are not a JSON array is refused as a whole request.
    assert status == 400 and codes & {MALFORMED_JSON, "request.malformed_json"}, (mode, status, reply)


@pytest.mark.parametrize("value", FOUND_BY_THE_FUZZER, ids=["invalid_byte", "encoded_surrogate"])
@pytest.mark.parametrize("headers", [None, [("content-type", b"application/json")]], ids=["no_headers", "json_content_type"])
def test_invalid_utf8_json_from_kafka_is_fetched_as_data_base64(server, producer, value, headers):
    stream = f"kafka.e{next(EXAMPLE_IDS)}"
    server.create_stream(stream)
    err, msg = kafka_send(producer, stream, value, headers=headers)
    assert err is None, str(err)
    for where, path, body in [
        ("fetch", f"/api/v1/streams/{stream}/events?partition=0&offset=0", None),
        ("group poll", f"/api/v1/streams/{stream}/groups/g/poll", json.dumps({"member": "m-1"}).encode()),
    ]:
        _, reply = read_json(server, "POST" if body else "GET", path, body, {"content-type": "application/json"})
        (envelope,) = reply["events"]
        assert "data" not in envelope["event"], (where, envelope)
        assert base64.b64decode(envelope["event"]["data_base64"]) == value, (where, envelope)
    (envelope,) = sse_events(server, stream, 0, 1)
    assert "data" not in envelope["event"] and base64.b64decode(envelope["event"]["data_base64"]) == value, ("live tail", envelope)
