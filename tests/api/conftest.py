"""Fixtures for the API tests."""
from __future__ import annotations

import pytest

from client.sdk import CustosClient, DeviceKey
from tests.conftest import flask_transport


@pytest.fixture
def device(chain_app):
    """A registered device talking to the chain-backed app."""
    c = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(chain_app))
    c.register()
    return c

