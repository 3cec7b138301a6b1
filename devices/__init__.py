"""Devices: the phones and contact apps that call Custos, each identified by a public key.

`devices.keys` parses and verifies Ed25519 / ECDSA P-256 public keys (pure);
`devices.model` holds the `devices` table; `devices.services` registers, reads, updates
and revokes devices inside one transaction each.
"""
