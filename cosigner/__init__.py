"""Key vault, descriptors, PSBT inspection, policy engine and signing.

Rooms (as the package grows): `vault.py` (envelope-encrypted cosigner keys),
`descriptors.py`, `psbt.py` (inspection: ownership proved by re-derivation), `policy.py`
(pure `evaluate(intent, policy, history, now) -> Decision`), `services.py` (use cases that
own the transaction), `errors.py` (one root exception).
"""
