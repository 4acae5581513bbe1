"""Settings from the environment (``VIGIE_*``): the only place that reads it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Service and CLI settings.

    Attributes
    ----------
    data_dir : Path
        Where the catalog database and the reference index live (``VIGIE_DATA_DIR``).
    database_url : str or None
        SQLAlchemy URL of the catalog; ``None`` = SQLite file ``<data_dir>/vigie.db``.
    match_confidence : float
        Calibrated confidence from which an alignment is reported as a match (0.999 = one
        chance alignment in a thousand scans).
    scan_seconds : float
        Default sample length of ``vigie scan``, in seconds.
    """

    model_config = SettingsConfigDict(env_prefix="VIGIE_", extra="ignore")

    data_dir: Path = Path("vigie-data")
    database_url: str | None = None
    match_confidence: float = Field(0.999, gt=0.0, lt=1.0)
    scan_seconds: float = Field(10.0, gt=0.0, le=600.0)

    @property
    def index_dir(self) -> Path:
        """Folder of the reference index."""
        return self.data_dir / "index"

    @property
    def catalog_url(self) -> str:
        """Catalog database URL."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vigie.db').resolve()}"
