"""Master-key rotation: re-wrap every sealed data key under the keyring's current key."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cosigner.model import CosignerKey
from cosigner.vault import SealedSecret, rewrap


def rotate_all(session: Session, keyring, *, batch: int = 200) -> tuple[int, int]:
    """Returns (rewrapped, already_current). Commits every `batch` rows so a long
    rotation never holds one huge transaction; safe to interrupt and re-run."""
    done = skipped = 0
    while True:
        rows = session.scalars(select(CosignerKey).where(CosignerKey.kek_id != keyring.current_id)
                               .order_by(CosignerKey.id).limit(batch).with_for_update()).all()
        if not rows:
            break
        for key in rows:
            sealed = rewrap(keyring, SealedSecret(key.kek_id, key.wrapped_dek, key.ciphertext), key.id)
            key.kek_id, key.wrapped_dek = sealed.kek_id, sealed.wrapped_dek
            done += 1
        session.commit()
    skipped = len(session.scalars(select(CosignerKey.id)).all()) - done
    return done, skipped
