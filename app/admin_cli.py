"""`flask staff …` (staff accounts and tokens) and the `flask custos` maintenance commands
added by the admin work (reconcile, prune). Passwords are read from a prompt or stdin,
never from the command line; a new token is printed once."""
from __future__ import annotations

import datetime as dt
import getpass
import sys

import click

from admin.roles import PERMISSIONS, ROLES


def _by() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli:operator"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password (12+ characters)", hide_input=True, confirmation_prompt=True)


def _run(fn):
    """Run fn(session, now) in one transaction; domain errors become exit code 1."""
    from admin.errors import StaffError
    from app.extensions import db
    from store.base import utcnow
    try:
        result = fn(db.session, utcnow())
        db.session.commit()
        return result
    except StaffError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.code}: {exc}") from None


def register_admin_cli(app, custos_group) -> None:
    from admin import services

    @app.cli.group("staff")
    def staff():
        """Staff accounts: create, disable, reset TOTP, roles, tokens."""

    @staff.command("create")
    @click.argument("username")
    @click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES))
    @click.option("--name", "display_name", default=None)
    @click.option("--password-stdin", is_flag=True, help="read the password from stdin (scripts)")
    def create(username, roles, display_name, password_stdin):
        """Create USERNAME with roles; they enroll TOTP (QR code) at their first console login."""
        password = _password(password_stdin)
        m = _run(lambda s, now: services.create(s, username, password, roles, by=_by(), now=now,
                                                display_name=display_name))
        click.echo(f"created {m.id} roles={','.join(m.roles)}; TOTP is enrolled at first login")

    @staff.command("disable")
    @click.argument("username")
    def disable(username):
        """Disable USERNAME: ends their sessions, revokes their tokens."""
        _run(lambda s, now: services.disable(s, username, by=_by(), now=now))
        click.echo(f"disabled {username}")

    @staff.command("enable")
    @click.argument("username")
    def enable(username):
        _run(lambda s, now: services.enable(s, username, by=_by(), now=now))
        click.echo(f"enabled {username}")

    @staff.command("reset-totp")
    @click.argument("username")
    def reset_totp(username):
        """Forget USERNAME's TOTP secret; they enroll a new one at their next login."""
        _run(lambda s, now: services.reset_totp(s, username, by=_by(), now=now))
        click.echo(f"TOTP reset for {username}; they enroll again at their next login")

    @staff.command("set-password")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True)
    def set_password(username, password_stdin):
        password = _password(password_stdin)
        _run(lambda s, now: services.set_password(s, username, password, by=_by(), now=now))
        click.echo(f"password set for {username}")

    @staff.command("roles")
    @click.argument("username")
    @click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES))
    def set_roles(username, roles):
        m = _run(lambda s, now: services.set_roles(s, username, roles, by=_by(), now=now))
        click.echo(f"{m.id} roles={','.join(m.roles)}")

    @staff.command("unlock")
    @click.argument("username")
    def unlock(username):
        _run(lambda s, now: services.unlock(s, username, by=_by(), now=now))
        click.echo(f"unlocked {username}")

    @staff.command("list")
    def list_staff():
        def show(s, now):
            for m in services.list_staff(s):
                state = "disabled" if m.disabled_at else ("locked" if m.locked(now) else "active")
                click.echo(f"{m.id}\t{','.join(m.roles)}\t{state}\ttotp={'yes' if m.totp_enrolled_at else 'no'}")
        _run(show)

    @staff.group("token")
    def token():
        """Scoped API tokens."""

    @token.command("create")
    @click.argument("username")
    @click.option("--name", required=True)
    @click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(ROLES + tuple(PERMISSIONS)))
    @click.option("--days", default=90, show_default=True, type=click.IntRange(1, 365))
    def token_create(username, name, scopes, days):
        """Create a token for USERNAME; prints it once (only its digest is stored)."""
        row, secret = _run(lambda s, now: services.create_token(s, username, name, scopes, by=_by(), now=now,
                                                                 ttl=dt.timedelta(days=days)))
        click.echo(f"id={row.id} expires={row.expires_at.isoformat()} scopes={','.join(row.scopes)}", err=True)
        click.echo(secret)

    @token.command("revoke")
    @click.argument("token_id")
    def token_revoke(token_id):
        _run(lambda s, now: services.revoke_token(s, token_id, by=_by(), now=now))
        click.echo(f"revoked {token_id}")

    @custos_group.command("reconcile")
    @click.option("--inline", is_flag=True, help="run the due jobs here instead of enqueueing them")
    def reconcile(inline):
        """Re-run the reconciler now: enqueue every due scheduled job (or run them inline,
        e.g. when the broker is down). Safe to run any time: jobs are claimed atomically."""
        from app.deps import deps
        from store.base import utcnow
        from store.session import session_scope
        from workers import jobs
        import workers.handlers  # noqa: F401  (registers handlers)
        settings = deps().settings
        with session_scope(settings.database_url) as s:
            ids = jobs.due(s, utcnow())
        if not inline:
            from workers.celery_app import make_celery
            celery = make_celery(settings)
            for job_id in ids:
                celery.send_task("workers.tasks.run_job", args=[job_id])
            click.echo(f"enqueued={len(ids)}")
            return
        from workers.celery_app import make_celery
        make_celery(settings).set_current()          # handlers read settings from the current app
        done = failed = 0
        for job_id in ids:
            try:
                with session_scope(settings.database_url) as s:
                    job = jobs.claim(s, job_id, utcnow())
                    if job is not None:
                        jobs.run(s, job, utcnow())
                        done += 1
            except Exception as exc:  # report and go on: the reconciler retries it later
                failed += 1
                click.echo(f"job {job_id} failed: {type(exc).__name__}", err=True)
        click.echo(f"due={len(ids)} ran={done} failed={failed}")

    @custos_group.command("prune")
    @click.option("--keep-days", default=30, show_default=True, type=click.IntRange(1, 3650))
    def prune(keep_days):
        """Delete expired data: used request nonces, idempotency records, expired messages,
        invites and superseded prekeys, delivered notifications, old staff sessions and
        revoked/expired tokens. Idempotent; prints counts."""
        from app.deps import deps
        from store.base import utcnow
        from store.session import session_scope
        settings, now = deps().settings, utcnow()
        counts = {}
        with session_scope(settings.database_url) as s:
            from devices import idempotency, nonces
            counts["nonces"] = nonces.purge_expired(s, now)
            counts["idempotency"] = idempotency.purge(s, now)
        with session_scope(settings.database_url) as s:
            from messaging import contacts, notify, prekeys, queues
            counts["messages"] = queues.expire(s, now)
            counts["invites"] = contacts.purge_invites(s, now)
            counts["signed_prekeys"] = prekeys.purge_superseded(s, now, dt.timedelta(
                seconds=settings.signed_prekey_grace))
            counts["notifications"] = notify.purge_done(s, now)
        with session_scope(settings.database_url) as s:
            counts.update(services.prune(s, now, dt.timedelta(days=keep_days)))
        click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
