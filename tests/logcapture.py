"""`captured_logs()`: every log record (DEBUG and up) through the production handler
(JSON + redaction) into a string buffer, for tests that scan logs for secrets."""
from __future__ import annotations

import contextlib
import io
import logging

from config.logging import make_handler


@contextlib.contextmanager
def captured_logs():
    stream = io.StringIO()
    handler = make_handler(stream, json_format=True)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
