"""``make demo``: index two channels, detect pirate restreams of one, reject a stranger.

Runs the real ``vigie`` commands on media it synthesises (no files from outside needed), in
a fresh data folder (``./demo-data`` unless ``VIGIE_DATA_DIR`` says otherwise). One pirate
copy is sound only, played 4 % fast; another is pictures only, mirrored and letterboxed;
the last is a pirate panel's HLS link (Xtream-style, credentials in the path) served from
loopback and sampled through the guarded capture layer, as a monitoring bot's URL would be.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .media import (
    change_speed,
    synth_pictures,
    synth_programme,
    write_audio,
    write_hls,
    write_video,
)

SR = 22050
FPS = 12.5


def _vigie(*args: str, env: dict[str, str], echo: bool = True) -> str:
    cmd = [sys.executable, "-m", "service.cli", *args]
    print("$ vigie " + " ".join(args), flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"demo failed: vigie {' '.join(args)} exited {done.returncode}")
    if echo:
        print(done.stdout.rstrip(), flush=True)
    return done.stdout


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


def _serve(folder: Path) -> http.server.ThreadingHTTPServer:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) from a background thread."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    """Run the demo end to end; exits non-zero if detection does not behave."""
    data = Path(os.environ.get("VIGIE_DATA_DIR", "demo-data")).resolve()
    shutil.rmtree(data, ignore_errors=True)
    media = data / "media"
    media.mkdir(parents=True)
    env = {**os.environ, "VIGIE_DATA_DIR": str(data)}

    print("1. Making media: two channels' recordings (2 min each, sound and pictures),")
    print("   two pirate copies and a stranger.")
    news = synth_programme(120.0, seed=1, sr=SR)
    news_pictures = synth_pictures(120.0, FPS, seed=1)
    write_video(media / "canal-news.mp4", news_pictures, FPS, news, SR)
    sport = synth_programme(120.0, seed=2, sr=SR)
    sport_pictures = synth_pictures(120.0, FPS, seed=2)
    write_video(media / "canal-sport.mp4", sport_pictures, FPS, sport, SR)
    # Pirate 1: 20 s of sound from 1 min in, played 4 % fast (PAL speed-up), MP3 48 kbit/s.
    pirate = change_speed(news[60 * SR : 80 * SR], 1.04)
    write_audio(media / "pirate-radio.mp3", pirate, SR, bitrate=48_000)
    # Pirate 2: 12 s of pictures from 30 s in, muted, mirrored and letterboxed, 300 kbit/s.
    cut = news_pictures[int(30 * FPS) : int(42 * FPS), :, ::-1]
    boxed = np.full((cut.shape[0], 240, 320, 3), 16, np.uint8)
    boxed[:, 30:210] = cut
    write_video(media / "pirate-muted.mp4", boxed, FPS, bitrate=300_000)
    write_video(
        media / "unrelated.mp4",
        synth_pictures(20.0, FPS, seed=99),
        FPS,
        synth_programme(20.0, seed=99, sr=SR),
        SR,
    )
    # Pirate 3: a panel's HLS restream of 30 s of Canal Sport from 45 s in, 2 s segments,
    # at /live/USER/PASS/ID.m3u8 as Xtream-Codes panels publish them.
    panel = media / "panel"
    restream = write_video(
        media / "restream.ts",
        sport_pictures[int(45 * FPS) : int(75 * FPS)],
        FPS,
        sport[45 * SR : 75 * SR],
        SR,
        bitrate=400_000,
        keyframe_seconds=2.0,
    )
    write_hls(restream, panel / "live" / "demo" / "s3cret", 2.0, playlist="2.m3u8")

    print("\n2. Registering and indexing the channels.")
    _vigie("channels", "add", "canal-news", "--name", "Canal News", "--owner", "Canal", env=env)
    _vigie("channels", "add", "canal-sport", "--name", "Canal Sport", "--owner", "Canal", env=env)
    _vigie("reindex", "canal-news", str(media / "canal-news.mp4"), env=env)
    _vigie("reindex", "canal-sport", str(media / "canal-sport.mp4"), env=env)
    _vigie("channels", "list", env=env)

    print("\n3. Scanning the pirate copies and an unrelated stream.")
    verdicts = {
        name: json.loads(_vigie("scan", str(media / name), "--json", env=env))
        for name in ("pirate-radio.mp3", "pirate-muted.mp4", "unrelated.mp4")
    }
    print()
    ok = verdicts["unrelated.mp4"]["verdict"] == "no_match"
    for name, start in (("pirate-radio.mp3", 60.0), ("pirate-muted.mp4", 30.0)):
        out = verdicts[name]
        m = out["matches"][0] if out["matches"] else {}
        by = [k for k in ("audio", "video") if m.get(k)]
        ok &= m.get("channel_id") == "canal-news" and abs(m["offset_seconds"] - start) < 0.5
        print(
            f"Verdict: {name} -> {out['verdict']} {m.get('channel_id', '')} "
            f"at {m.get('offset_seconds', '?')} s, speed {m.get('speed', '?')}, "
            f"confidence {m.get('confidence', '?')}, by {' and '.join(by) or 'nothing'}"
        )
    print(f"Verdict: unrelated.mp4 -> {verdicts['unrelated.mp4']['verdict']}")

    print("\n4. Scanning a pirate panel's HLS link, served from this machine.")
    server = _serve(panel)
    url = f"http://127.0.0.1:{server.server_address[1]}/live/demo/s3cret/2.m3u8"
    # Captures never contact internal addresses unless allow-listed: loopback is, here.
    lan_env = {**env, "VIGIE_ALLOW_NETWORKS": "127.0.0.1/32"}
    try:
        out = json.loads(_vigie("scan", url, "--json", env=lan_env, echo=False))
        print(_panel_verdict(out))
        ok &= _good_panel(out)
        print("\n5. The same through the HTTP service, as a monitoring bot submits it.")
        ok &= _through_http(url, data, lan_env)
    finally:
        server.shutdown()
    if not ok:
        raise SystemExit("demo failed: the pirate copies were not detected as expected")
    print("Demo OK.")


def _good_panel(out: dict) -> bool:
    m = out["matches"][0] if out["matches"] else {}
    return (
        m.get("channel_id") == "canal-sport"
        and abs(m.get("offset_seconds", -1) - 45) < 0.5
        and "s3cret" not in json.dumps(out)
    )


def _panel_verdict(out: dict) -> str:
    m = out["matches"][0] if out["matches"] else {}
    segments = [r for r in out["capture"]["evidence"]["ranges"] if r["role"] == "segment"]
    return (
        f"Verdict: {out['sample']['source']} -> {out['verdict']} {m.get('channel_id', '')} "
        f"at {m.get('offset_seconds', '?')} s, confidence {m.get('confidence', '?')}; "
        f"{len(segments)} segments captured, each SHA-256 in the evidence"
    )


def _through_http(url: str, data: Path, env: dict[str, str]) -> bool:
    """Start ``vigie serve``, submit ``url`` with a bot's key, wait for its verdict and show
    the incident an analyst would see. True when it names the right channel."""
    import httpx

    from .db import Database
    from .keys import create_key
    from .settings import Settings

    db = Database(Settings(data_dir=data).catalog_url)
    _, bot = create_key(db, "demo-bot", ["scans:write"])
    _, analyst = create_key(db, "demo-analyst", ["matches:read"])
    db.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"$ vigie serve --port {port}")
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(300):
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            as_bot = {"Authorization": f"Bearer {bot}"}
            posted = http.post("/v1/scans", json={"url": url}, headers=as_bot)
            where = posted.headers.get("location")
            print(f"POST /v1/scans -> {posted.status_code}, Location: {where}")
            scan = posted.json()
            deadline = time.monotonic() + 120
            while scan["status"] not in ("done", "failed") and time.monotonic() < deadline:
                time.sleep(0.5)
                scan = http.get(posted.headers["location"], headers=as_bot).json()
            print(
                f"GET {posted.headers['location']} -> {scan['status']}: {scan.get('verdict')} "
                f"{scan.get('channel_id') or ''}, confidence {scan.get('confidence')} "
                f"(a second sample, {Settings().confirm_after_seconds:.0f} s later, confirms it)"
            )
            as_analyst = {"Authorization": f"Bearer {analyst}"}
            incidents = http.get("/v1/incidents", headers=as_analyst).json()["items"]
            for i in incidents:
                print(
                    f"Incident {i['id']}: {i['host']} restreams {i['channel_id']}, "
                    f"{i['verdict']}, first seen {i['first_seen']}"
                )
    finally:
        serve.terminate()
        serve.wait(30)
    return scan.get("channel_id") == "canal-sport" and scan.get("verdict") == "suspected"


if __name__ == "__main__":
    main()
