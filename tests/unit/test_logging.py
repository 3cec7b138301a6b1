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


# -- the fast redaction path keeps every kind of secret out (issue #19) ----------------
WIF = "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"
HEX_KEY = "0c28fca386c7a227600b2fe50b7cae11ec86d3bf1fbe471be89827e19d72aa1d"
B64_SIG = "MEUCIQDx3k9Lw0Zb5q8uR2vT7yN1cH4fJ6aK0pS9eXmV3gWbLQIgY2hU8"
SECRET_LINES = [
    ("password=hunter2 next", "hunter2"),
    ("user passphrase: correct-horse", "correct-horse"),
    ('{"otp": "123456"}', "123456"),
    ("otp_code=987654", "987654"),
    ("verification-code: 424242", "424242"),
    ("operator share=academic-acid", "academic-acid"),
    ("'shares': ['a1b2', 'c3d4']", "a1b2"),
    ("shard: s3cr3tShard", "s3cr3tShard"),
    ('mnemonic="abandon ability able"', "abandon ability able"),
    ("seed=00ff00ff", "00ff00ff"),
    ("client_secret=sssh", "sssh"),
    ("device_token=tok_abc123", "tok_abc123"),
    ("Signature: sig1=:dGhpcyBpcyBhIHNpZ25hdHVyZQ==:", "dGhpcyBpcyBhIHNpZ25hdHVyZQ"),
    ('Signature-Input: sig1=("@method");keyid="dev_1"', '("@method")'),
    ("Cookie: session=abc.def.ghi", "abc.def.ghi"),
    ("private_key: 'b3BlbnNzaA'", "b3BlbnNzaA"),
    ("x-api-key=k_live_1", "k_live_1"),
    ("'master_key': b'\\x00\\x01'", "\\x00\\x01"),
    ("Authorization: Bearer abc.def", "abc.def"),
    ("proxy-authorization: Basic dXNlcjpwdw", "dXNlcjpwdw"),
    ("x=password=hunter3", "hunter3"),
    (f"key {XPRV} leaked", XPRV),
    (f"wif {WIF} leaked", WIF),
    (f"raw {HEX_KEY}", HEX_KEY),
    (f"sig {B64_SIG}", B64_SIG),
]


@pytest.mark.parametrize("text,secret", SECRET_LINES)
def test_every_kind_of_secret_is_redacted_at_info(text, secret):
    stream = io.StringIO()
    logger = logging.getLogger("test.redaction.info")
    logger.propagate = False
    handler = make_handler(stream, json_format=True)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("event %s", text)
    finally:
        logger.removeHandler(handler)
    out = json.loads(stream.getvalue())["msg"]
    assert secret not in out and REDACTED in out


def test_share_words_are_redacted_at_info_through_the_handler():
    stream = io.StringIO()
    logger = logging.getLogger("test.redaction.share")
    logger.propagate = False
    handler = make_handler(stream, json_format=True)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    share = share_words()
    try:
        logger.info("holder sent %s", share)
    finally:
        logger.removeHandler(handler)
    assert share not in stream.getvalue() and REDACTED in stream.getvalue()


@pytest.mark.parametrize("text", [
    "GET /v1/devices/me 200 1.4ms device=dev_0123456789abcdef0123456789abcdef",
    "DELETE /v1/messages/3f1b2c4d-1234-4abc-9def-0123456789ab 204 2.1ms device=dev_0123456789abcdef0123456789abcdef",
    "key_type=ed25519 public=yes code=policy_denied",
    "loaded /work/custos/migrations/versions/0003_accounts_spends_idempotency.py",
])
def test_request_lines_and_non_secret_pairs_are_kept(text):
    assert redact(text) == text


def test_secrets_inside_a_long_record_are_all_found():
    """The linear scanner keeps scanning after a long run (the old patterns backtracked)."""
    filler = "A" * 5000 + " " + "word " * 300
    text = f"{filler} password=hunter2 {filler} token=tok_xyz {filler} {HEX_KEY}"
    out = redact(text)
    assert "hunter2" not in out and "tok_xyz" not in out and HEX_KEY not in out
