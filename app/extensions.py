"""Flask extensions bound in create_app(). `db` shares `store.base.Base`'s metadata, so
Alembic (through Flask-Migrate) sees every domain table."""
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from store.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
