"""Operator staff: accounts (argon2id passwords, mandatory TOTP, roles), console sessions,
scoped API tokens, the authorization table, system status and Prometheus metrics.

Domain code only: nothing here imports Flask request objects; the HTTP side lives in
`app/auth/staff.py`, `app/admin_api.py` and `app/console/`.
"""
