"""The QR payload that carries a contact invite from one phone to another. Pure (stdlib
only), shared by the server and the reference client."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from messaging.limits import MAX_DISPLAY_NAME, MAX_RECEIVE_ADDRESS, QR_VERSION

CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class QrPayload:
    """What the inviter's phone shows as a QR code. JSON with sorted keys."""
    invite_code: str
    identity_fingerprint: str
    display_name: str
    receive_address: str | None = None
    version: int = QR_VERSION

    def to_json(self) -> str:
        data = {"v": self.version, "code": self.invite_code, "fp": self.identity_fingerprint,
                "name": self.display_name}
        if self.receive_address:
            data["addr"] = self.receive_address
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "QrPayload":
        """Parse and validate a QR payload; raises ValueError (never quoting the code)."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            raise ValueError("QR payload is not JSON") from None
        if not isinstance(data, dict) or data.get("v") != QR_VERSION:
            raise ValueError(f"QR payload must be an object with v={QR_VERSION}")
        code, fp, name = data.get("code"), data.get("fp"), data.get("name")
        if not isinstance(code, str) or not CODE_PATTERN.match(code):
            raise ValueError("QR payload has a malformed invite code")
        if not isinstance(fp, str) or not re.fullmatch(r"[0-9a-f]{64}", fp):
            raise ValueError("QR payload has a malformed identity fingerprint")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_DISPLAY_NAME:
            raise ValueError("QR payload has a malformed display name")
        addr = data.get("addr")
        if addr is not None and (not isinstance(addr, str) or not 1 <= len(addr) <= MAX_RECEIVE_ADDRESS):
            raise ValueError("QR payload has a malformed receive address")
        return cls(code, fp, name, addr, QR_VERSION)
