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
    allow_networks : str
        Comma-separated CIDRs that captures may contact although they are internal
        (``VIGIE_ALLOW_NETWORKS``; empty: none — loopback, private and link-local ranges
        are refused).
    capture_deadline_seconds : float
        Wall-clock budget of one capture, in seconds.
    egress_note : str
        Recorded in every capture's evidence: where our requests leave from.
    """

    model_config = SettingsConfigDict(env_prefix="VIGIE_", extra="ignore")

    data_dir: Path = Path("vigie-data")
    database_url: str | None = None
    match_confidence: float = Field(0.999, gt=0.0, lt=1.0)
    scan_seconds: float = Field(10.0, gt=0.0, le=600.0)
    allow_networks: str = ""
    capture_deadline_seconds: float = Field(45.0, gt=0.0, le=3600.0)
    egress_note: str = ""

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
