"""Imports every domain model module so their tables register on the shared metadata.
Add a line here when a package gains a model module."""
import admin.model  # noqa: F401
import audit.model  # noqa: F401
import chain.model  # noqa: F401
import cosigner.model  # noqa: F401
import devices.model  # noqa: F401
import devices.idempotency  # noqa: F401
import devices.nonces  # noqa: F401
import messaging.model  # noqa: F401
import prices.model  # noqa: F401
import recovery.model  # noqa: F401
import recovery.budget  # noqa: F401
import inheritance.model  # noqa: F401
import workers.jobs  # noqa: F401
import verification.model  # noqa: F401
