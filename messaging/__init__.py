"""E2EE store-and-forward queues (opaque ciphertext, oldest first, acknowledged by
delete), the Signal prekey directory, contacts, and push notifications behind a
`PushSender` interface (OneSignal in production, an outbox table by default)."""
