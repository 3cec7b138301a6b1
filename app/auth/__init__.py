"""Device authentication: RFC 9421 HTTP Message Signatures (`httpsig`, pure), the Flask
decorator that applies them (`device`), and optional mutual-TLS enforcement."""
