"""SMTP delivery refuses to send a one-time code in the clear when TLS is required
(production): a real plaintext SMTP server on a local socket, offering no STARTTLS."""
from __future__ import annotations

import socket
import threading

import pytest

from store.base import utcnow
from store.session import session_scope


class PlainSmtpServer:
    """A minimal SMTP server (no STARTTLS) that records the messages it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as rf:
                send = lambda line: conn.sendall(line.encode() + b"\r\n")   # noqa: E731
                send("220 plain.test ESMTP")
                data = None
                for raw in rf:
                    line = raw.decode().rstrip("\r\n")
                    if data is not None:
                        if line == ".":
                            self.messages.append(b"\n".join(data))
                            data = None
                            send("250 queued")
                        else:
                            data.append(raw.rstrip(b"\r\n"))
                        continue
                    verb = line.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        send("250-plain.test")
                        send("250 8BITMIME")
                    elif verb == "DATA":
                        data = []
                        send("354 go ahead")
                    elif verb == "QUIT":
                        send("221 bye")
                        break
                    else:
                        send("250 ok")

    def close(self):
        self.sock.close()


@pytest.fixture
def smtp_server():
    server = PlainSmtpServer()
    yield server
    server.close()


@pytest.mark.parametrize("require_tls", [True, False])
def test_a_code_is_never_mailed_in_the_clear_when_tls_is_required(clean_db, smtp_server, require_tls):
    import smtplib
    from cosigner.vault import keyring_from_settings
    from recovery.mailer import Mail, SmtpMailer
    from recovery.model import MailOutbox
    from tests.conftest import make_settings
    import base64
    import os
    settings = make_settings(clean_db, None, "sqla+sqlite:///:memory:", MASTER_KEY=base64.b64encode(os.urandom(32)).decode())
    mailer = SmtpMailer(keyring_from_settings(settings), "127.0.0.1", smtp_server.port, None, None,
                        "custos@test", timeout=5, require_tls=require_tls)
    with session_scope(clean_db) as s:
        mail_id = mailer.send(s, Mail("owner@example.org", "code", "Code: 123456"), to_hash="h" * 64,
                              kind="recovery_otp", now=utcnow())
    with session_scope(clean_db) as s:
        if require_tls:
            with pytest.raises(smtplib.SMTPNotSupportedError):
                mailer.deliver(s, mail_id, utcnow())
        else:
            assert mailer.deliver(s, mail_id, utcnow())
    with session_scope(clean_db) as s:
        state = s.get(MailOutbox, mail_id).state
    assert (state, len(smtp_server.messages)) == (("pending", 0) if require_tls else ("sent", 1))
