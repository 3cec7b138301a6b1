"""/v1/contacts: invites (single use, 72 h, only a hash stored), accepting them, the
caller's contacts, and ending a contact relationship (either side)."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from app.auth.device import signed
from app.extensions import db
from app.messaging_api import limit
from app.messaging_schemas import AcceptBodySchema, ContactListSchema, ContactSchema, InviteInSchema, InviteOutSchema
from app.ratelimit import client_ip
from app.transaction import committing
from messaging import contacts
from store.base import utcnow

bp = Blueprint("contacts", __name__, url_prefix="/v1/contacts", description="Contacts and invites")


def _contact_view(contact, device_id: str) -> dict:
    other, name = contact.other(device_id)
    return {"contact_id": contact.id, "device_id": other, "display_name": name, "created_at": contact.created_at}


@bp.route("/invites", methods=["POST"])
@signed
@bp.arguments(InviteInSchema)
@bp.response(201, InviteOutSchema)
def create_invite(body):
    """A single-use invite code (shown once) and the QR payload carrying it with the
    caller's identity-key fingerprint and chosen display name. Needs uploaded keys."""
    limit("ratelimit_invite_create", "invites", "invite-create", g.device.id)
    with committing():
        new = contacts.create_invite(db.session, g.device.id, body["display_name"], body["receive_address"],
                                     now=utcnow())
    return {"invite_id": new.invite.id, "invite_code": new.code, "expires_at": new.invite.expires_at,
            "qr_payload": new.qr.to_json()}


@bp.route("/invites/accept", methods=["POST"])
@signed
@bp.arguments(AcceptBodySchema)
@bp.response(201, ContactSchema)
@bp.alt_response(200, schema=ContactSchema, description="Already contacts; the invite is used up")
def accept_invite_in_body(body):
    """Accept an invite: creates the two-way contact. The code travels in the body, never
    in a URL (paths end up in proxy and access logs). Rate-limited per device and per
    address (codes cannot be guessed by brute force)."""
    return _accept(body["code"], body.get("display_name"))


def _accept(code: str, display_name: str | None):
    limit("ratelimit_invite_accept", "invite attempts", "invite-accept", g.device.id)
    limit("ratelimit_invite_accept", "invite attempts from this address", "invite-accept-ip", client_ip())
    with committing():
        contact, created = contacts.accept_invite(db.session, g.device.id, code, display_name, now=utcnow())
    return _contact_view(contact, g.device.id), (201 if created else 200)


@bp.route("", methods=["GET"])
@signed
@bp.response(200, ContactListSchema)
def list_contacts():
    """The caller's contacts (the other side's device id and chosen name)."""
    return {"contacts": [_contact_view(c, g.device.id) for c in contacts.list_contacts(db.session, g.device.id)]}


@bp.route("/<contact_id>", methods=["DELETE"])
@signed
@bp.response(204)
def delete_contact(contact_id):
    """End a contact relationship (either side may). 404 if it is not the caller's."""
    with committing():
        contacts.delete_contact(db.session, g.device.id, contact_id, now=utcnow())
