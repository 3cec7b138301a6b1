"""Redaction of secrets in logs, JSON format and request ids."""
import io
import json
import logging

import pytest
import shamir_mnemonic

from config.logging import REDACTED, make_handler, redact, request_id_var

XPRV = ("xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yu"
        "GBxrMPHi")


def share_words() -> str:
    return shamir_mnemonic.generate_mnemonics(1, [(2, 3)], b"0123456789abcdef", b"")[0][0]


@pytest.mark.parametrize("text,secret", [
    ("password=hunter2 next", "hunter2"),
    ('{"otp": "123456"}', "123456"),
    ("otp_code: 987654", "987654"),
    ("Signature: sig1=:dGhpcyBpcyBhIHNpZ25hdHVyZQ==:", "dGhpcyBpcyBhIHNpZ25hdHVyZQ"),
    ("Authorization: Bearer abc.def", "abc.def"),
    (f"key {XPRV} leaked", XPRV),
    ("seed " + "ab" * 32, "ab" * 32),
    ("'master_key': 'c2VjcmV0'", "c2VjcmV0"),
])
def test_secrets_are_redacted(text, secret):
    out = redact(text)
    assert secret not in out and REDACTED in out


def test_slip39_share_is_redacted_but_plain_sentences_are_not():
    share = share_words()
    assert share not in redact(f"got share {share}")
    sentence = "the server refused to start because the database was not reachable at the given address"
    assert redact(sentence) == sentence


def test_ordinary_messages_survive():
    msg = 'GET /v1/devices/me 200 3.1ms device=dev_abc {"code": "policy_denied"}'
    assert redact(msg) == msg


def test_handler_emits_redacted_json_with_request_id():
    stream = io.StringIO()
    logger = logging.getLogger("test.redaction")
    logger.propagate = False
    handler = make_handler(stream, json_format=True)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_id_var.set("req-42")
    try:
        logger.info("login password=%s otp=%s", "hunter2", "123456")
        try:
            raise ValueError("bad share " + share_words())
        except ValueError:
            logger.exception("failed")
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["request_id"] == "req-42" and lines[0]["level"] == "INFO"
    assert "hunter2" not in lines[0]["msg"] and "123456" not in lines[0]["msg"]
    assert "ValueError" in lines[1]["exc"] and REDACTED in lines[1]["exc"]
    assert share_words().split()[5] not in stream.getvalue() or REDACTED in lines[1]["exc"]
