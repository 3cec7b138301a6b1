"""RFC 9421 verifier: signature base, digests, window and nonce rules (pure)."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.auth import errors, httpsig
from devices import keys

BODY = b'{"hello": "world"}'


def b64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def rfc_request(**overrides) -> httpsig.RequestView:
    """The test request of RFC 9421 Appendix B.2."""
    fields = dict(
        method="POST", scheme="https", authority="example.com", path="/foo", query="param=Value&Pet=dog",
        headers=httpsig.make_headers([
            ("Host", "example.com"), ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("Content-Type", "application/json"),
            ("Content-Digest", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"),
            ("Content-Length", "18"),
            ("Signature-Input", 'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
                                ';created=1618884473;keyid="test-key-ed25519"'),
            ("Signature", "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"),
        ]), body=BODY)
    fields.update(overrides)
    return httpsig.RequestView(**fields)


def test_signature_base_matches_rfc9421_b26():
    req = rfc_request()
    sig = httpsig.parse_signature(req)
    assert sig.label == "sig-b26"
    assert httpsig.signature_base(req, sig).decode() == (
        '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        '"@method": POST\n'
        '"@path": /foo\n'
        '"@authority": example.com\n'
        '"content-type": application/json\n'
        '"content-length": 18\n'
        '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"')


def test_rfc9421_ed25519_test_vector_verifies():
    req = rfc_request()
    sig = httpsig.parse_signature(req)
    public = b64u("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs")
    assert keys.verify_signature("ed25519", public, sig.signature, httpsig.signature_base(req, sig))
    # one changed byte in the covered content breaks it
    tampered = rfc_request(authority="example.org")
    assert not keys.verify_signature("ed25519", public, sig.signature, httpsig.signature_base(tampered, sig))


def test_derived_components():
    req = rfc_request()
    assert httpsig.component_value(req, "@query") == "?param=Value&Pet=dog"
    assert httpsig.component_value(req, "@target-uri") == "https://example.com/foo?param=Value&Pet=dog"
    assert httpsig.component_value(req, "@request-target") == "/foo?param=Value&Pet=dog"
    assert httpsig.component_value(rfc_request(query=""), "@query") == "?"
    with pytest.raises(errors.SignatureIncomplete):
        httpsig.component_value(req, "x-not-sent")


def test_content_digest_rfc9530_example():
    assert httpsig.content_digest(BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


def test_digest_checks():
    httpsig.check_digest(rfc_request())  # the RFC's sha-512 digest matches
    with pytest.raises(errors.DigestMismatch):
        httpsig.check_digest(rfc_request(body=b'{"hello": "World"}'))
    with pytest.raises(errors.DigestMismatch):  # body without any digest
        httpsig.check_digest(rfc_request(headers=httpsig.make_headers([])))
    with pytest.raises(errors.DigestMismatch):  # only unsupported algorithms
        httpsig.check_digest(rfc_request(headers=httpsig.make_headers([("Content-Digest", "md5=:AAAA:")])))
    with pytest.raises(errors.DigestMismatch):  # not a structured field
        httpsig.check_digest(rfc_request(headers=httpsig.make_headers([("Content-Digest", "garbage((")])))
    httpsig.check_digest(rfc_request(body=b"", headers=httpsig.make_headers([])))  # no body, no digest: fine


class Signer:
    """Builds signed RequestViews with our own base construction (for rule tests)."""

    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        from cryptography.hazmat.primitives import serialization
        self.public = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def request(self, *, created=1_000_000, nonce="n" * 20, keyid="dev_a", components=None, body=b"",
                query="", extra_params="", sign_body=None):
        comps = components or (["@method", "@path"] + (["@query"] if query else [])
                               + (["content-digest"] if body else []))
        params = f";created={created};keyid=\"{keyid}\"" + (f";nonce=\"{nonce}\"" if nonce else "") + extra_params
        sig_input = "(" + " ".join(f'"{c}"' for c in comps) + ")" + params
        headers = [("Signature-Input", f"sig1={sig_input}")]
        if body:
            headers.append(("Content-Digest", httpsig.content_digest(sign_body if sign_body is not None else body)))
        req = httpsig.RequestView("PUT", "https", "api.test", "/v1/x", query, httpsig.make_headers(headers), body)
        base = httpsig.signature_base(req, httpsig.parse_signature(
            httpsig.RequestView("PUT", "https", "api.test", "/v1/x", query,
                                httpsig.make_headers(headers + [("Signature", "sig1=:AA==:")]), body)))
        sig = base64.b64encode(self.key.sign(base)).decode()
        return httpsig.RequestView("PUT", "https", "api.test", "/v1/x", query,
                                   httpsig.make_headers(headers + [("Signature", f"sig1=:{sig}:")]), body)

    def resolver(self, keyid):
        if keyid != "dev_a":
            raise errors.AuthError("unknown", code="unknown_device")
        return "ed25519", lambda s, m: keys.verify_signature("ed25519", self.public, s, m)


def verify(signer, req, now=1_000_000, used=None):
    used = set() if used is None else used

    def consume(keyid, nonce):
        if (keyid, nonce) in used:
            return False
        used.add((keyid, nonce))
        return True
    return httpsig.verify(req, now=now, window=300, resolve_key=signer.resolver, consume_nonce=consume)


def test_valid_request_verifies_and_nonce_is_single_use():
    s = Signer()
    used = set()
    req = s.request(body=b'{"a":1}', query="x=1")
    v = verify(s, req, used=used)
    assert (v.keyid, v.nonce, v.created) == ("dev_a", "n" * 20, 1_000_000)
    with pytest.raises(errors.NonceReused):
        verify(s, req, used=used)


@pytest.mark.parametrize("now,ok", [(1_000_300, True), (1_000_301, False), (999_700, True), (999_699, False)])
def test_window_is_300_seconds_both_ways(now, ok):
    s = Signer()
    if ok:
        verify(s, s.request(), now=now)
    else:
        with pytest.raises(errors.SignatureExpired):
            verify(s, s.request(), now=now)


def test_expires_parameter_is_enforced():
    s = Signer()
    with pytest.raises(errors.SignatureExpired):
        verify(s, s.request(extra_params=";expires=999999"))


@pytest.mark.parametrize("kwargs,exc", [
    ({"nonce": None}, errors.SignatureIncomplete),
    ({"nonce": "short"}, errors.SignatureIncomplete),
    ({"components": ["@method"]}, errors.SignatureIncomplete),
    ({"query": "a=1", "components": ["@method", "@path"]}, errors.SignatureIncomplete),
    ({"body": b"{}", "components": ["@method", "@path"]}, errors.SignatureIncomplete),
    ({"body": b"{}", "sign_body": b"[]"}, errors.DigestMismatch),
    ({"extra_params": ';alg="ecdsa-p256-sha256"'}, errors.SignatureInvalid),
])
def test_profile_violations(kwargs, exc):
    s = Signer()
    with pytest.raises(exc):
        verify(s, s.request(**kwargs))


def test_nonce_is_not_burned_by_a_forgery():
    s, other = Signer(), Signer()
    used = set()
    forged = other.request(nonce="shared-nonce-123456")
    with pytest.raises(errors.SignatureInvalid):
        verify(s, forged, used=used)
    assert used == set()
    verify(s, s.request(nonce="shared-nonce-123456"), used=used)


@pytest.mark.parametrize("headers,exc", [
    ([], errors.SignatureMissing),
    ([("Signature-Input", "sig1=(\"@method\");created=1"), ("Signature", "other=:AA==:")], errors.SignatureMalformed),
    ([("Signature-Input", "not a dictionary (("), ("Signature", "sig1=:AA==:")], errors.SignatureMalformed),
    ([("Signature-Input", 'sig1=("@METHOD");created=1'), ("Signature", "sig1=:AA==:")], errors.SignatureMalformed),
    ([("Signature-Input", 'sig1=("@method" "@method");created=1'), ("Signature", "sig1=:AA==:")], errors.SignatureMalformed),
    ([("Signature-Input", 'sig1="@method"'), ("Signature", "sig1=:AA==:")], errors.SignatureMalformed),
])
def test_malformed_headers(headers, exc):
    req = httpsig.RequestView("GET", "https", "h", "/", "", httpsig.make_headers(headers))
    with pytest.raises(exc):
        httpsig.parse_signature(req)


def test_p256_signatures_use_raw_r_s():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    der = key.sign(b"msg", ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = keys.low_s(r.to_bytes(32, "big") + s.to_bytes(32, "big"))     # low S only (see below)
    assert keys.verify_signature("ecdsa-p256", pub, raw, b"msg")
    assert not keys.verify_signature("ecdsa-p256", pub, der, b"msg")  # DER is refused
    assert not keys.verify_signature("ecdsa-p256", pub, raw, b"other")


# -- P-256 signatures: low S only (issue #14) ---------------------------------------------------
def test_p256_high_s_is_refused_and_low_s_accepted():
    import os
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from devices import keys
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    seen = set()
    for _ in range(64):                     # cryptography yields both forms; meet both
        message = os.urandom(16)
        r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
        low, high = min(s, keys.P256_ORDER - s), max(s, keys.P256_ORDER - s)
        as_raw = lambda v: r.to_bytes(32, "big") + v.to_bytes(32, "big")   # noqa: E731
        assert keys.verify_signature("ecdsa-p256", public, as_raw(low), message)
        assert not keys.verify_signature("ecdsa-p256", public, as_raw(high), message)
        assert keys.low_s(as_raw(high)) == as_raw(low) and keys.low_s(as_raw(low)) == as_raw(low)
        seen.add(s == low)
    assert seen == {True, False}


# -- the direct @signature-params writer equals http_sf's serialization (issue #19) ----
from hypothesis import given, strategies as st  # noqa: E402

_sf_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_sf_key = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,10}", fullmatch=True)


@given(components=st.lists(_sf_text, max_size=6),
       params=st.dictionaries(_sf_key, st.one_of(_sf_text, st.integers(-10**15 + 1, 10**15 - 1),
                                                 st.just(True), st.just(False), st.binary(max_size=8)),
                              max_size=6))
def test_signature_params_serialization_matches_http_sf(components, params):
    import http_sf
    from http_sf.list import ser_item_or_inner_list
    header = ser_item_or_inner_list(([(c, {}) for c in components], params))
    parsed_members, parsed_params = http_sf.parse(f"sig1={header}".encode(), tltype="dictionary")["sig1"]
    fast = httpsig.serialize_params([m for m, _ in parsed_members], dict(parsed_params))
    if fast is not None:
        assert fast == header
    else:   # only types the fast path leaves to the library
        assert any(type(v) not in (str, int) and v is not True for v in parsed_params.values())


def test_signature_params_with_escapes_and_tokens():
    import http_sf
    raw = b'("@method" "x\\\\y\\"z");created=1;keyid="dev_\\"q";alg="ed25519";flag'
    members, params = http_sf.parse(b"sig1=" + raw, tltype="dictionary")["sig1"]
    assert httpsig.serialize_params([m for m, _ in members], dict(params)) == raw.decode()
    members, params = http_sf.parse(b'sig1=("@method");tag=abc', tltype="dictionary")["sig1"]
    assert httpsig.serialize_params([m for m, _ in members], dict(params)) is None   # a token: the library writes it


# -- Ed25519 through libsodium (issue #19): same answers, never weaker -----------------
def test_ed25519_verification_accepts_exactly_the_valid_signatures():
    from cryptography.hazmat.primitives import serialization
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    other = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                   serialization.PublicFormat.Raw)
    msg = b'"@method": GET\n"@signature-params": ("@method");created=1'
    sig = key.sign(msg)
    assert keys.verify_signature("ed25519", pub, sig, msg)
    assert not keys.verify_signature("ed25519", pub, sig, msg + b"x")
    assert not keys.verify_signature("ed25519", other, sig, msg)
    flipped = bytearray(sig)
    flipped[5] ^= 1
    assert not keys.verify_signature("ed25519", pub, bytes(flipped), msg)
    assert not keys.verify_signature("ed25519", pub, sig[:63], msg)          # short: never the message's bytes
    assert not keys.verify_signature("ed25519", pub, sig + b"\0", msg)
    # S + L (the group order) is the classic malleated copy: refused
    order = 2**252 + 27742317777372353535851937790883648493
    s_int = int.from_bytes(sig[32:], "little") + order
    assert not keys.verify_signature("ed25519", pub, sig[:32] + s_int.to_bytes(32, "little"), msg)
    # a small-order public key (the identity point) with a signature made for it: refused
    identity = (1).to_bytes(32, "little")
    assert not keys.verify_signature("ed25519", identity, identity + bytes(32), msg)
