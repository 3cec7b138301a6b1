"""The structured-field fast paths (app.auth.sf_fast) return exactly what http_sf
returns, or defer (None); and the environ-backed header mapping the verifier reads
answers as the mapping built from werkzeug's EnvironHeaders would."""
from __future__ import annotations

import base64

import http_sf
import pytest
from hypothesis import example, given, settings, strategies as st
from werkzeug.datastructures import EnvironHeaders as WerkzeugEnvironHeaders

from app.auth import httpsig, sf_fast


def _http_sf(text: str):
    """http_sf's answer, or the exception type it raised."""
    try:
        return http_sf.parse(text.encode("latin-1"), tltype="dictionary")
    except Exception as exc:  # noqa: BLE001 — any failure counts as "refused"
        return type(exc)


def _agrees(fast, text: str) -> None:
    if fast is not None:
        assert fast == _http_sf(text), text


_key = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,8}", fullmatch=True)
_plain = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=24)
_int = st.integers(-(10 ** 15) + 1, 10 ** 15 - 1)
_param = st.tuples(_key, st.one_of(_plain, _int, st.just(True)))


def _input_text(label, components, params, leading_zeros=False) -> str:
    out = [f"{label}=(", " ".join(f'"{c}"' for c in components), ")"]
    for key, value in params:
        if value is True:
            out.append(f";{key}")
        elif isinstance(value, int):
            out.append(f";{key}={'00' if leading_zeros and 0 <= value < 10 ** 13 else ''}{value}")
        else:
            out.append(f';{key}="{value}"')
    return "".join(out)


@settings(max_examples=400)
@given(label=_key, components=st.lists(_plain, max_size=6), params=st.lists(_param, max_size=7),
       leading_zeros=st.booleans())
@example(label="sig1", components=["@method", "@path"], params=[("created", 1), ("keyid", "dev_a"),
                                                                  ("alg", "ed25519"), ("nonce", "n" * 24)],
         leading_zeros=False)
@example(label="a", components=[], params=[("x", 1), ("y", ""), ("x", "again"), ("z", True)], leading_zeros=True)
def test_client_shaped_signature_input_takes_the_fast_path_and_matches_http_sf(label, components, params,
                                                                                leading_zeros):
    text = _input_text(label, components, params, leading_zeros)
    fast = sf_fast.signature_input(text)
    assert fast is not None, text
    assert fast == _http_sf(text)


@settings(max_examples=400)
@given(data=st.binary(max_size=80), label=_key, unpadded=st.booleans())
def test_byte_member_matches_http_sf(data, label, unpadded):
    b64 = base64.b64encode(data).decode()
    text = f"{label}=:{b64.rstrip('=') if unpadded else b64}:"
    fast = sf_fast.byte_member(text)
    if not unpadded or len(data) % 3 == 0:
        assert fast == {label: (data, {})}, text
    _agrees(fast, text)


_VALID = [
    'sig1=("@method" "@path" "@query" "content-digest");created=1796302599;keyid="dev_0123";'
    'alg="ed25519";nonce="jyBwV6JO5XxeqWnIM-NS8ndb4WDfWS2b"',
    "sig1=:TEtzCCebyEHSh5iHeayZZ8hhQG3oreYl2dp4/OibKrY1T8fwd1iP/i4HThcqFTkQbchzr8+WTIo6YTPKuh5EDQ==:",
    "sha-256=:+dhgKMbg1k4iUYb5astpM4ssWXZN95FiEH9cS7NNExA=:",
]
_ALPHABET = st.sampled_from(list('"\\();=:, \t?*-_.@/+0123456789abcAB\x7f\xe9') + ["sig1", "=:", '="'])


@settings(max_examples=1500)
@given(base=st.sampled_from(_VALID), pos=st.integers(0, 200), cut=st.integers(0, 3), insert=st.lists(_ALPHABET, max_size=3))
def test_any_edit_of_a_valid_header_is_matched_or_deferred(base, pos, cut, insert):
    pos = pos % (len(base) + 1)
    text = base[:pos] + "".join(insert) + base[pos + cut:]
    _agrees(sf_fast.signature_input(text), text)
    _agrees(sf_fast.byte_member(text), text)


@settings(max_examples=1500)
@given(text=st.lists(_ALPHABET, max_size=30).map("".join))
def test_arbitrary_text_is_matched_or_deferred(text):
    _agrees(sf_fast.signature_input(text), text)
    _agrees(sf_fast.byte_member(text), text)


@pytest.mark.parametrize("text", [
    'sig1=("a"), sig2=("b")',            # two members
    'sig1=("a\\"b")',                    # an escape
    "sig1=(a)",                          # a token
    'sig1=("a");x=1.5',                  # a decimal
    'sig1=("a");x=?1',                   # a boolean
    'sig1=( "a")', 'sig1=("a"  "b")',    # spaces the fast path does not take
    'sig1=("a");x=1234567890123456',     # an integer too long: http_sf refuses it
    "sig1=:AAA:", "sig1=:A===:", "sig1=:TE;x=1:", "sig1=:AAAA:;p=1",
])
def test_other_shapes_defer(text):
    assert sf_fast.signature_input(text) is None and sf_fast.byte_member(text) is None


# -- the environ-backed headers --------------------------------------------------------
_env_name = st.from_regex(r"[A-Z0-9][A-Z0-9_]{0,12}", fullmatch=True)
_env_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)


@settings(max_examples=300)
@given(http=st.dictionaries(_env_name, _env_value, max_size=6),
       content_type=st.one_of(st.none(), _env_value), content_length=st.one_of(st.none(), st.just(""), st.just("12")),
       probes=st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,14}", fullmatch=True), max_size=6))
@example(http={"CONTENT_TYPE": "x", "SIGNATURE_INPUT": "a"}, content_type="", content_length=None,
         probes=["content-type", "signature-input", "signature_input", "Signature-Input"])
def test_environ_headers_answer_as_the_werkzeug_mapping(http, content_type, content_length, probes):
    environ = {f"HTTP_{k}": v for k, v in http.items()}
    environ.update({"REQUEST_METHOD": "GET", "wsgi.url_scheme": "http"})
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    built = httpsig.make_headers(WerkzeugEnvironHeaders(environ).items())
    lazy = httpsig.EnvironHeaders(environ)
    for name in [*built, *probes, "content-type", "content-length"]:
        assert lazy.get(name) == built.get(name), name
        assert lazy.get(name.lower()) == built.get(name.lower()), name
    assert dict(lazy) == built
