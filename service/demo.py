"""``make demo``: index a channel, detect a pirate restream of it, reject an unrelated stream.

Runs the real ``vigie`` commands on media it synthesises (no files from outside needed), in
a fresh data folder (``./demo-data`` unless ``VIGIE_DATA_DIR`` says otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .media import change_speed, synth_programme, write_audio

SR = 22050


def _vigie(*args: str, env: dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "service.cli", *args]
    print("$ vigie " + " ".join(args), flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"demo failed: vigie {' '.join(args)} exited {done.returncode}")
    print(done.stdout.rstrip(), flush=True)
    return done.stdout


def main() -> None:
    """Run the demo end to end; exits non-zero if detection does not behave."""
    data = Path(os.environ.get("VIGIE_DATA_DIR", "demo-data")).resolve()
    shutil.rmtree(data, ignore_errors=True)
    media = data / "media"
    media.mkdir(parents=True)
    env = {**os.environ, "VIGIE_DATA_DIR": str(data)}

    print("1. Making media: two channels' recordings (3 min each), a pirate copy, a stranger.")
    news = synth_programme(180.0, seed=1, sr=SR)
    sport = synth_programme(180.0, seed=2, sr=SR)
    write_audio(media / "canal-news.flac", news, SR)
    write_audio(media / "canal-sport.flac", sport, SR)
    # The pirate: 20 s from 1 min in, played 4 % fast (PAL speed-up), MP3 at 48 kbit/s.
    pirate = change_speed(news[60 * SR : 80 * SR], 1.04)
    write_audio(media / "pirate.mp3", pirate, SR, bitrate=48_000)
    write_audio(media / "unrelated.mp3", synth_programme(20.0, seed=99, sr=SR), SR, 48_000)

    print("\n2. Registering and indexing the channels.")
    _vigie("channels", "add", "canal-news", "--name", "Canal News", "--owner", "Canal", env=env)
    _vigie("channels", "add", "canal-sport", "--name", "Canal Sport", "--owner", "Canal", env=env)
    _vigie("reindex", "canal-news", str(media / "canal-news.flac"), env=env)
    _vigie("reindex", "canal-sport", str(media / "canal-sport.flac"), env=env)
    _vigie("channels", "list", env=env)

    print("\n3. Scanning the pirate copy and an unrelated stream.")
    hit = json.loads(_vigie("scan", str(media / "pirate.mp3"), "--json", env=env))
    miss = json.loads(_vigie("scan", str(media / "unrelated.mp3"), "--json", env=env))

    ok = (
        hit["verdict"] == "match"
        and hit["matches"][0]["channel_id"] == "canal-news"
        and abs(hit["matches"][0]["offset_seconds"] - 60.0) < 0.5
        and miss["verdict"] == "no_match"
    )
    m = hit["matches"][0] if hit["matches"] else {}
    print(
        f"\nVerdict: pirate.mp3 -> {hit['verdict']} {m.get('channel_id', '')} "
        f"at {m.get('offset_seconds', '?')} s, speed {m.get('speed', '?')}, "
        f"confidence {m.get('confidence', '?')}; unrelated.mp3 -> {miss['verdict']}"
    )
    if not ok:
        raise SystemExit("demo failed: the pirate copy was not detected as expected")
    print("Demo OK.")


if __name__ == "__main__":
    main()
