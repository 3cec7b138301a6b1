"""`flask custos …` maintenance commands."""
from __future__ import annotations

import click


def register_cli(app) -> None:
    @app.cli.group("custos")
    def custos():
        """Custos maintenance commands."""

    from app.admin_cli import register_admin_cli
    register_admin_cli(app, custos)          # `flask staff …`, `flask custos reconcile|prune`

    @custos.command("verify-audit")
    def verify_audit():
        """Verify the audit log's hash chain; exit 1 at the first broken link."""
        from app.extensions import db
        from audit.services import verify
        report = verify(db.session)
        click.echo(f"checked={report.checked} ok={report.ok}"
                   + ("" if report.ok else f" first_broken_seq={report.first_broken_seq} reason={report.reason}"))
        raise SystemExit(0 if report.ok else 1)

    @custos.command("chain-backfill")
    @click.option("--restore/--no-restore", default=True, show_default=True,
                  help="also index each account's past from its birthday (or creation time)")
    def chain_backfill(restore):
        """Upgrade path to the chain index: watch the scripts of accounts created before
        it existed and (by default) schedule their restores. Idempotent; prints counts."""
        from app.extensions import db
        from cosigner.accounts import backfill_index
        from store.base import utcnow
        registered, restores = backfill_index(db.session, utcnow(), restore=restore)
        db.session.commit()
        click.echo(f"registered={registered} restores={restores}")

    @custos.command("rotate-master-key")
    @click.option("--batch", default=200, show_default=True, help="keys re-wrapped per transaction")
    def rotate_master_key(batch):
        """Re-wrap every sealed key's data key under the current MASTER_KEY.

        Run with the new key as MASTER_KEY and the old one(s) in MASTER_KEY_PREVIOUS; the
        API keeps serving throughout (both keys unwrap). Idempotent: re-running skips
        rows already under the current key. Prints counts, never key material."""
        from app.deps import deps
        from app.extensions import db
        from cosigner.rotation import rotate_all
        done, skipped = rotate_all(db.session, deps().cosigner.keyring, batch=batch)
        from admin.services import rewrap_secrets
        staff_secrets = rewrap_secrets(db.session, deps().cosigner.keyring)   # staff TOTP secrets
        db.session.commit()
        click.echo(f"rewrapped={done} already_current={skipped} staff_totp_secrets={staff_secrets}")
