"""Envelope validation (pure): shapes, base64, size and type limits."""
from __future__ import annotations

import base64

import pytest

from messaging.errors import InvalidEnvelope
from messaging.limits import MAX_ENVELOPES_PER_REQUEST, MAX_MESSAGE_BYTES
from messaging.queues import Envelope, parse_envelope, parse_envelopes


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_valid_envelope_with_default_type():
    assert parse_envelope({"to": "dev_1", "ciphertext": b64(b"abc")}) == Envelope("dev_1", b"abc", 1)
    assert parse_envelope({"to": "dev_1", "ciphertext": b64(b"abc"), "type": 3}).type == 3


def test_maximum_size_is_accepted_and_one_more_byte_is_not():
    assert len(parse_envelope({"to": "d", "ciphertext": b64(b"\0" * MAX_MESSAGE_BYTES)}).ciphertext) == MAX_MESSAGE_BYTES
    from messaging.errors import TooLarge
    with pytest.raises(TooLarge, match="at most") as err:       # a size limit: 422 validation_error
        parse_envelope({"to": "d", "ciphertext": b64(b"\0" * (MAX_MESSAGE_BYTES + 1))})
    assert err.value.details == {"field": "ciphertext", "max_bytes": MAX_MESSAGE_BYTES}


@pytest.mark.parametrize("item,match", [
    ("nope", "object"),
    ({"to": "d"}, "base64 string"),
    ({"to": "", "ciphertext": "AA=="}, "device id"),
    ({"to": "d" * 41, "ciphertext": "AA=="}, "device id"),
    ({"to": "d", "ciphertext": "AA"}, "not valid base64"),           # missing padding
    ({"to": "d", "ciphertext": "A A=="}, "not valid base64"),        # whitespace
    ({"to": "d", "ciphertext": "é"}, "not valid base64"),
    ({"to": "d", "ciphertext": ""}, "empty"),
    ({"to": "d", "ciphertext": "AA==", "type": -1}, "type"),
    ({"to": "d", "ciphertext": "AA==", "type": 256}, "type"),
    ({"to": "d", "ciphertext": "AA==", "type": True}, "type"),
    ({"to": "d", "ciphertext": "AA==", "from": "x"}, "unknown envelope fields"),
])
def test_invalid_envelopes(item, match):
    with pytest.raises(InvalidEnvelope, match=match) as err:
        parse_envelope(item)
    assert err.value.code == "invalid_envelope"


def test_error_never_quotes_the_ciphertext():
    secret = b64(b"attack at dawn" * 10)[:-1] + "!"
    with pytest.raises(InvalidEnvelope) as err:
        parse_envelope({"to": "d", "ciphertext": secret})
    assert secret not in str(err.value)


def test_list_bounds():
    one = {"to": "d", "ciphertext": "AA=="}
    assert len(parse_envelopes([one] * MAX_ENVELOPES_PER_REQUEST)) == MAX_ENVELOPES_PER_REQUEST
    for bad in ([], [one] * (MAX_ENVELOPES_PER_REQUEST + 1), "x"):
        with pytest.raises(InvalidEnvelope):
            parse_envelopes(bad)
