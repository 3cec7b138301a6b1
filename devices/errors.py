"""Device errors (one root for the package)."""


class DeviceError(Exception):
    """Root of every error the devices package raises."""
    code = "device_error"


class InvalidPublicKey(DeviceError):
    code = "invalid_public_key"


class DeviceNotFound(DeviceError):
    code = "unknown_device"


class DeviceRevoked(DeviceError):
    code = "device_revoked"


class KeyAlreadyRegistered(DeviceError):
    """The key belongs to a revoked device: a revoked key can never come back."""
    code = "key_revoked"
