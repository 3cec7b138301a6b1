"""Flask extensions bound in create_app(). `db` shares `store.base.Base`'s metadata, so
Alembic (through Flask-Migrate) sees every domain table.

The request session keeps loaded attributes after commit (`expire_on_commit=False`, as the
workers' sessions already do): a request's session lives for that request only, so
nothing it holds can go stale across requests, and a commit no longer costs a reload of
every object the view touches afterwards (the device, the rows it serializes). A rollback
still expires everything."""
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from store.base import Base

db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
