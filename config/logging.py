"""JSON logs with a request id, and a filter that redacts secrets.

`configure_logging(settings)` is idempotent. The redaction filter runs on every handler
record: it masks extended private keys, WIF keys, long hex/base64 blobs, SLIP-39/BIP-39
word lists, and `key=value` / `"key": value` pairs whose key names a secret (password,
otp, share, signature, authorization, secret, token, mnemonic, seed, private key).
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

REDACTED = "[REDACTED]"

_SECRET_NAMES = (r"pass(?:word|phrase)?|otp|(?:otp|verification)[_-]?code|share|shares|shard|mnemonic|seed|secret|token"
                 r"|signature(?:-input)?|cookie|private[_-]?key|prv|master[_-]?key|api[_-]?key")
# Every pattern below runs in linear time: a record is scanned a bounded number of times
# whatever its length (possessive quantifiers, lookbehind-anchored tokens), and a pattern
# runs only when a cheap substring test says it could match.
_AUTHORIZATION = re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)([^\r\n,;\"']+)")
# `name: value`, `name=value`, `"name": "value"`, `'name': b'...'`: a key token (letters,
# digits, _ and -) that ENDS with a secret name, then : or =, then the value (quoted, a
# [list] or {object}, or up to the next space , ; & or quote).
_KEY_SEP = re.compile(r"""(?<![\w-])([\w-]++)(["']?\s*+[:=]\s*+)""")
_SECRET_KEY = re.compile(r"(?i)(?:%s)\Z" % _SECRET_NAMES)
_VALUE = re.compile(r""""[^"]*+"|'[^']*+'|b'[^']*+'|\[[^\]]*+\]?|\{[^}]*+\}?|[^\s,;&"']++""")
_KEY_HINTS = ("pass", "otp", "code", "shar", "mnemonic", "seed", "secret", "token", "signature", "cookie",
              "key", "prv")
_PATTERNS = [
    # extended private keys (xprv/tprv/yprv/zprv/...)
    re.compile(r"\b[xtyzuvYZUV]prv[1-9A-HJ-NP-Za-km-z]{100,}"),
    # WIF private keys
    re.compile(r"\b[5KLc9][1-9A-HJ-NP-Za-km-z]{50,51}\b"),
    # 64+ hex characters (raw keys, seeds) and long base64 blobs
    re.compile(r"\b[0-9a-fA-F]{64,}\b"),
]
# A run this long of base64/base58/hex characters is what every pattern above needs.
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_=-]{43}")
_BLOB = re.compile(r"[A-Za-z0-9+/_-]{43,}={0,2}")


def _mask_blob(match: re.Match) -> str:
    """Long base64/base64url runs that look random (mixed case and digits, few slashes:
    not a file path) are keys, shares or signatures."""
    s = match.group(0)
    random_looking = (sum(c.isdigit() for c in s) >= 2 and any(c.isupper() for c in s)
                      and any(c.islower() for c in s) and s.count("/") * 12 <= len(s))
    return REDACTED if random_looking else s


# Runs of 12+ lowercase words: redacted when they are mostly SLIP-39 words (shares).
_WORD_RUN = re.compile(r"\b(?:[a-z]{4,8}\s+){11,}[a-z]{4,8}\b")
_slip39_words: frozenset[str] | None = None


def _wordlist() -> frozenset[str]:
    global _slip39_words
    if _slip39_words is None:
        from shamir_mnemonic.wordlist import WORDLIST
        _slip39_words = frozenset(WORDLIST)
    return _slip39_words


def _mask_share_words(match: re.Match) -> str:
    words = match.group(0).split()
    known = sum(w in _wordlist() for w in words)
    return REDACTED if known * 5 >= len(words) * 4 else match.group(0)


def _redact_pairs(text: str) -> str:
    out, pos = [], 0
    for m in _KEY_SEP.finditer(text):
        if m.start() < pos or not _SECRET_KEY.search(m.group(1)):
            continue
        value = _VALUE.match(text, m.end())
        if value is None:
            continue
        out += (text[pos:m.end()], REDACTED)
        pos = value.end()
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def redact(text: str) -> str:
    """Return `text` with anything secret-looking replaced by [REDACTED]. Pure; linear in
    the length of `text`."""
    low = text.lower()
    if "uthorization" in low:
        text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    if ("=" in text or ":" in text) and any(h in low for h in _KEY_HINTS):
        text = _redact_pairs(text)
    if _LONG_RUN.search(text):
        for pattern in _PATTERNS:
            text = pattern.sub(REDACTED, text)
        text = _BLOB.sub(_mask_blob, text)
    if text.count(" ") + text.count("\n") + text.count("\t") >= 11:
        text = _WORD_RUN.sub(_mask_share_words, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) with `redact()`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None
        return True


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (from the current request's context) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC ISO-8601), level, logger, msg, request_id."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def make_handler(stream=None, json_format: bool = True) -> logging.Handler:
    """A stream handler with the request-id and redaction filters attached."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler._custos = True  # marks our handler so reconfiguring replaces it
    return handler


def configure_logging(settings) -> None:
    """Install one redacting handler on the root logger at settings.log_level. Idempotent."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_custos", False):
            root.removeHandler(h)
    root.addHandler(make_handler(json_format=settings.log_json))
    root.setLevel(settings.log_level)
    logging.getLogger("BitcoinRPC").setLevel(logging.WARNING)
