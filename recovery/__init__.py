"""Social recovery: SLIP-39 shares, the operator share (encrypted at rest), recovery cases
(a state machine advanced by services and driven by Celery tasks), encrypted backups and
email OTP. The operator share is never released on an emailed code alone."""
