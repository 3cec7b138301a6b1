"""input_guard's cheap paths (strings dropped by a split, printable ASCII skipped) give
the answers of the regex-only checks they replace."""
from __future__ import annotations

import json
import re

from hypothesis import given, settings, strategies as st

from app import input_guard as ig

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def _reference_structure(raw: bytes, max_depth: int, max_items: int):
    """check_structure as it was: the regex strips every string."""
    stripped = _STRING.sub(b'""', raw)
    brackets = stripped.count(b"[") + stripped.count(b"{")
    if stripped.count(b",") + stripped.count(b":") + brackets > max_items:
        return "items"
    depth = 0
    for m in re.finditer(rb"[\[\]{}]", stripped):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return "depth"
        else:
            depth -= 1
    return None


def _structure(raw: bytes, max_depth: int, max_items: int):
    try:
        ig.check_structure(raw, max_depth, max_items)
    except ig.InputRejected as exc:
        return "depth" if "nested" in str(exc) else "items"
    return None


def _reference_bad_text(value, path: str = ""):
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            leaf = where.rsplit(".", 1)[-1].split("[", 1)[0]
            if (ig._BAD_SINGLE_LINE if leaf in ig.SINGLE_LINE else ig._BAD).search(item):
                return where or "body"
        elif isinstance(item, dict):
            for k, v in item.items():
                key_path = f"{where}.{k}" if where else str(k)
                if ig._BAD_SINGLE_LINE.search(k):
                    return key_path
                stack.append((key_path, v))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
    return None


_chars = st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                   st.sampled_from(["\t", "\n", "\r", "\x00", "\x1f", "\x7f", "\x85", "\x9f", "é", "\ud800", "\u2028"]))
_text = st.text(_chars, max_size=10)
_keys = st.one_of(_text, st.sampled_from(sorted(ig.SINGLE_LINE)))
_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), _text),
                     lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
                     max_leaves=20)


@settings(max_examples=500)
@given(value=_json)
def test_bad_text_finds_what_the_regexes_find(value):
    assert ig.bad_text(value) == _reference_bad_text(value)


@settings(max_examples=500)
@given(value=_json, ensure_ascii=st.booleans(), max_depth=st.integers(1, 4), max_items=st.integers(0, 12))
def test_structure_check_matches_the_regex_strip(value, ensure_ascii, max_depth, max_items):
    try:
        raw = json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        return
    assert _structure(raw, max_depth, max_items) == _reference_structure(raw, max_depth, max_items)


@settings(max_examples=500)
@given(raw=st.lists(st.sampled_from([b'"', b"\\", b"[", b"]", b"{", b"}", b",", b":", b"a", b" "]),
                    max_size=40).map(b"".join),
       max_depth=st.integers(1, 4), max_items=st.integers(0, 12))
def test_structure_check_matches_on_arbitrary_bytes(raw, max_depth, max_items):
    assert _structure(raw, max_depth, max_items) == _reference_structure(raw, max_depth, max_items)
