"""Settings from the environment (``VIGIE_*``): the only place that reads it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Service and CLI settings.

    Attributes
    ----------
    data_dir : Path
        Where the catalog database and the reference index live (``VIGIE_DATA_DIR``).
    database_url : str or None
        SQLAlchemy URL of the catalog and the service tables (one database, two Alembic
        histories): ``postgresql+psycopg://user@host/db`` (extra ``vigie[postgres]``) for
        many processes on many machines; ``None`` = SQLite file ``<data_dir>/vigie.db``.
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
    broker_url : str or None
        Job queue: ``redis://host:port/db[?namespace=NAME]`` for the Redis broker shared by
        any number of ``vigie worker`` processes (extra ``vigie[redis]``; ``vigie serve`` then
        runs the API only); ``None`` = in-process broker and worker threads started by
        ``vigie serve``.
    worker_threads : int
        Scans one process runs at once. Captures wait on the network for most of their
        ``scan_seconds``, so this is well above the number of cores.
    match_processes : int
        Processes that fingerprint samples and query the index for this process's scans
        (``0``: on the scan threads themselves). Matching is the CPU-bound part of a scan;
        kept out of the API process, it cannot hold the interpreter lock that HTTP
        requests wait on. One per core that the API does not need.
    capture_in_processes : bool
        Each capture runs in a process of its own (:mod:`service.capture_process`):
        decoding holds the interpreter lock, and in the API's process HTTP requests
        waited behind it; a decoder that crashes or hangs on a hostile stream takes only
        its own scan down. ``False``: captures run on the scan threads.
    scan_nice : int
        CPU priority steps (Linux ``nice``) by which scan threads and match processes run
        below the API, so that decoding at full speed does not make HTTP requests wait
        for a core (``0``: same priority).
    lease_seconds : float
        How long a worker's hold on a scan lasts unless renewed, in seconds. A live worker
        renews it every third of that; a killed one stops, and another worker takes the
        scan over once the lease has run out and a sweep has re-sent it: within
        ``lease_seconds + sweep_seconds`` of the death.
    sweep_seconds : float
        Period of the sweeper, in seconds: how often each worker process re-sends work
        whose message was lost or whose worker died.
    requeue_seconds : float
        A job still queued this many seconds after its message was sent has it sent again
        by the sweeper: the message was lost (a Redis without persistence restarted, an
        in-process broker that died). Re-sending is harmless (workers claim rows, not
        messages), but each one is a message more in the queue, hence not every sweep.
    feed_lease_seconds : float
        How long an ingester's hold on a live feed lasts unless renewed, in seconds
        (renewed every third of that): a dead ingester's feeds are followed again by
        another within two of these (:mod:`reference_index.feed_leases`).
    suspect_confidence : float
        Calibrated confidence from which a match is reported ``suspected`` (below
        ``match_confidence``, or above it but not yet confirmed by a second sample).
    confirm_after_seconds : float
        Delay before the second sample that confirms a match, in seconds: long enough for
        the stream to have moved on (a replayed file and a live restream then differ).
    confirm_tolerance_seconds : float
        How far the two samples' delays to live (or their progress through a recording
        against the wall clock) may differ for the second to confirm the first, in seconds.
    dedupe_seconds : float
        A URL submitted again within this many seconds gets the existing scan back.
    rate_per_minute : int
        Requests one API key may make per minute (a key's own limit overrides it).
    max_body_bytes : int
        Largest request body accepted, in bytes.
    max_playlist_entries : int
        Scans one IPTV playlist fans out into at most.
    webhook_backoff_seconds : float
        First retry delay of a failed webhook, in seconds; later ones follow the Standard
        Webhooks schedule scaled from it (5 s: 5 min, 30 min, 2 h ... about a day in all).
    evidence_key_path : Path
        The Ed25519 private key that signs evidence bundles (PEM, mode 0600), made on
        first use; default ``<data_dir>/keys/evidence-ed25519.pem``. Keep it: bundles
        signed with a lost key can only be checked against its published public key.
    evidence_max_bytes : int
        Media bytes (segments, streams) a scan keeps for its evidence bundle, in bytes
        (default 16 MiB: a 10 s sample of a 10 Mbit/s stream); playlists are kept whole
        besides. ``0``: no playlists or media bytes kept, only their hashes.
    host, port : str, int
        Where ``vigie serve`` listens.
    """

    model_config = SettingsConfigDict(env_prefix="VIGIE_", extra="ignore")

    data_dir: Path = Path("vigie-data")
    database_url: str | None = None
    match_confidence: float = Field(0.999, gt=0.0, lt=1.0)
    scan_seconds: float = Field(10.0, gt=0.0, le=600.0)
    allow_networks: str = ""
    capture_deadline_seconds: float = Field(45.0, gt=0.0, le=3600.0)
    egress_note: str = ""
    broker_url: str | None = None
    worker_threads: int = Field(8, ge=1, le=256)
    match_processes: int = Field(1, ge=0, le=64)
    capture_in_processes: bool = True
    scan_nice: int = Field(10, ge=0, le=19)
    lease_seconds: float = Field(60.0, ge=3.0, le=3600.0)
    sweep_seconds: float = Field(30.0, gt=0.0, le=3600.0)
    requeue_seconds: float = Field(60.0, ge=1.0, le=86400.0)
    feed_lease_seconds: float = Field(30.0, ge=1.0, le=3600.0)
    suspect_confidence: float = Field(0.99, gt=0.0, lt=1.0)
    confirm_after_seconds: float = Field(120.0, ge=0.0, le=86400.0)
    confirm_tolerance_seconds: float = Field(10.0, gt=0.0, le=3600.0)
    dedupe_seconds: float = Field(600.0, ge=0.0, le=86400.0)
    rate_per_minute: int = Field(600, ge=1)
    max_body_bytes: int = Field(65536, ge=1024)
    max_playlist_entries: int = Field(5000, ge=1, le=100000)
    webhook_backoff_seconds: float = Field(5.0, gt=0.0, le=3600.0)
    evidence_key_path: Path | None = None
    evidence_max_bytes: int = Field(16 * 1024 * 1024, ge=0, le=1024 * 1024 * 1024)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    @model_validator(mode="after")
    def _default_key_path(self) -> Settings:
        if self.evidence_key_path is None:
            self.evidence_key_path = self.data_dir / "keys" / "evidence-ed25519.pem"
        return self

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
