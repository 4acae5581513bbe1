"""What every ``vigie`` command shares: settings, the catalog, the index, one-line errors."""

from __future__ import annotations

import typer
from rich.console import Console

from reference_index.catalog import Catalog
from reference_index.index import Index
from reference_index.store.base import ParamsMismatch

from .settings import Settings

__all__ = ["err", "fail", "open_catalog", "open_index", "settings_from_env"]

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_from_env() -> Settings:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def open_catalog(settings: Settings) -> Catalog:
    return Catalog(settings.catalog_url)


def open_index(settings: Settings) -> Index:
    try:
        return Index(settings.index_dir)
    except ParamsMismatch as exc:
        raise fail(str(exc)) from None
