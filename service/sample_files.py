"""Write a captured sample's frames as PNG files a person can look at."""

from __future__ import annotations

from pathlib import Path

import cv2

from fingerprinting.types import FrameBatch

__all__ = ["write_frames"]


def write_frames(folder: Path, frames: FrameBatch) -> int:
    """Write each grey frame as ``NNNN_T.png`` (T: its time in seconds, 3 decimals), in
    time order so a file browser lists them as they played; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, (t, gray) in enumerate(zip(frames.times, frames.gray, strict=True)):
        cv2.imwrite(str(folder / f"{k:04d}_{t:08.3f}.png"), gray)
    return len(frames)
