"""`dispatcher db upgrade`: Alembic, driven from code so the package carries its own migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from dispatcher.config import get_settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic reads '%' as interpolation; escape it so passwords with '%' survive.
    config.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at `url` (default: settings) to `revision`."""
    command.upgrade(alembic_config(url), revision)


def revision(message: str, url: str | None = None) -> None:
    """Autogenerate a migration (developers only)."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
