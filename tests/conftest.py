"""Shared fixtures: synthetic programme audio (no media files needed) and the shared media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.media import synth_programme

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


@pytest.fixture(scope="session")
def programme() -> np.ndarray:
    """90 s of synthetic music at 8 kHz (the fingerprint rate)."""
    return synth_programme(90.0, seed=11, sr=8000)


@pytest.fixture(scope="session")
def other_programme() -> np.ndarray:
    """Unrelated synthetic music, 60 s at 8 kHz."""
    return synth_programme(60.0, seed=12, sr=8000)


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """``../shared/media``; tests that need it skip where it is absent."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real media folder {SHARED_MEDIA} is absent on this machine")
    return SHARED_MEDIA
