"""`flask custos …` maintenance commands."""
from __future__ import annotations

import click


def register_cli(app) -> None:
    @app.cli.group("custos")
    def custos():
        """Custos maintenance commands."""

    @custos.command("verify-audit")
    def verify_audit():
        """Verify the audit log's hash chain; exit 1 at the first broken link."""
        from app.extensions import db
        from audit.services import verify
        report = verify(db.session)
        click.echo(f"checked={report.checked} ok={report.ok}"
                   + ("" if report.ok else f" first_broken_seq={report.first_broken_seq} reason={report.reason}"))
        raise SystemExit(0 if report.ok else 1)
