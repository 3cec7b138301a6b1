"""Reference client SDK and CLI: plays the mobile app and the contacts' apps.

`client.sdk.CustosClient` holds a device key (Ed25519 or ECDSA P-256) and signs every
request with RFC 9421 HTTP Message Signatures through the independent
`http-message-signatures` library (so the server's own verifier is checked against
another implementation). `python -m client register|whoami` is the CLI.
"""
from client.sdk import CustosClient, DeviceKey, ApiError  # noqa: F401
