"""The append-only, hash-chained audit log.

Every row stores the hash of the previous row, so changing, deleting or reordering any
row breaks the chain at that point. `audit.chain` is the pure hashing/verification code;
`audit.services.record()` appends inside the caller's transaction; `verify()` walks the
whole table and reports the first broken link. Details never carry secrets.
"""
