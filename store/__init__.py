"""Persistence plumbing shared by the domain packages.

`store.base.Base` is the one SQLAlchemy declarative base (Flask-SQLAlchemy uses it as its
model class, so Alembic sees every table); `store.session` builds engines and sessions
from settings for code that runs outside Flask (Celery workers, CLIs, tests).
"""
