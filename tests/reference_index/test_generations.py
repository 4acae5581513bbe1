"""Re-indexing without half-built states: staged tracks, resumable jobs, index generations."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fingerprinting.params import AudioParams
from reference_index import batch
from reference_index.batch import job_name, reindex, reindex_all
from reference_index.generations import BUILDING, CURRENT, Recording, current_generation
from reference_index.index import Index
from reference_index.store.base import ParamsMismatch
from reference_index.store.embedded import EmbeddedStore
from reference_index.store.segment import Segment
from service.media import synth_programme, write_audio

SR = 22050


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    d = tmp_path_factory.mktemp("recordings")
    return [
        str(write_audio(d / f"show{i}.wav", synth_programme(20.0, 100 + i, sr=SR), SR))
        for i in range(4)
    ]


def _sources(index, modality="audio"):
    return sorted(
        (t.channel_id, os.path.basename(t.source)) for t in index.store(modality).tracks().values()
    )


def test_staged_tracks_are_invisible_until_published_at_once(tmp_path):
    store = EmbeddedStore(tmp_path, {"a": 1})
    old = store.add_track(
        "ch1", "a.wav", np.arange(10, dtype=np.uint32), np.arange(10), hop_seconds=0.1
    )
    keys = np.arange(100, 110, dtype=np.uint32)
    store.add_track("ch1", "a.wav", keys, np.arange(10), hop_seconds=0.1, job="j1")
    store.add_track("ch1", "b.wav", keys + 10, np.arange(10), hop_seconds=0.1, job="j1")
    assert set(store.tracks()) == {old.id} and store.lookup(keys).size == 0
    assert sorted(store.staged("j1")) == ["a.wav", "b.wav"] and store.jobs() == ["j1"]
    # Staged postings survive compaction and retention (they are not removed tracks).
    store.compact()
    store.retain({})
    published = store.publish("j1")
    assert {t.source for t in published} == {"a.wav", "b.wav"}
    assert sorted(t.source for t in store.tracks().values()) == ["a.wav", "b.wav"]
    assert store.lookup(keys).size == 10 and store.jobs() == []
    store.add_track("ch1", "c.wav", keys, np.arange(10), hop_seconds=0.1, job="j2")
    store.discard("j2")
    assert store.jobs() == [] and "c.wav" not in {t.source for t in store.tracks().values()}


def test_a_killed_reindex_resumes_and_publishes_once(tmp_path, recordings, monkeypatch):
    index = Index(tmp_path / "index")
    reindex(index, "ch1", recordings[:1])  # an earlier version of the channel
    old = index.audio.tracks()
    fingerprinted = []
    real_work = batch._work

    def spy(source, *params):
        fingerprinted.append(os.path.basename(source))
        return real_work(source, *params)

    monkeypatch.setattr(batch, "_work", spy)

    class Killed(Exception):
        pass

    def die_after_two(done):
        if len(fingerprinted) == 2:
            raise Killed

    with pytest.raises(Killed):
        reindex(index, "ch1", recordings, on_done=die_after_two)
    # Nothing of the job is visible: queries still see the earlier version only.
    assert Index(tmp_path / "index").audio.tracks() == old
    job = job_name("ch1", recordings)
    done = json.loads((index.home / "jobs" / f"{job}.json").read_text())["done"]
    assert len(done) == 2
    fingerprinted.clear()
    results = reindex(index, "ch1", recordings)
    assert fingerprinted == ["show2.wav", "show3.wav"]  # the first two were resumed
    assert all(r.track is not None for r in results) and len(results) == 4
    assert _sources(index) == [("ch1", f"show{i}.wav") for i in range(4)]  # one track each
    assert not (index.home / "jobs" / f"{job}.json").exists()
    assert index.audio.jobs() == []


def test_reindex_all_builds_a_new_generation_and_swaps_it_in(tmp_path, recordings):
    root = tmp_path / "index"
    index = Index(root)
    reindex(index, "ch1", recordings[:2])
    reindex(index, "ch2", recordings[2:3])
    index.live_track("audio", "ch1", "feed:1", 1.8e9)
    assert current_generation(root) == "."
    new_params = AudioParams(fanout=4)  # a change of fingerprint parameters
    with pytest.raises(ParamsMismatch, match="reindex --all"):
        Index(root, audio_params=new_params)
    extra = [Recording("ch2", recordings[3])]  # a catalog asset never indexed yet

    class Killed(Exception):
        pass

    seen = []

    def die_once(done):
        seen.append(done)
        if len(seen) == 2:
            raise Killed

    with pytest.raises(Killed):
        reindex_all(root, extra, on_done=die_once, audio_params=new_params)
    assert current_generation(root) == "."  # the half-built generation is not in use
    building = [p.name for p in root.glob("gen-*") if (p / BUILDING).exists()]
    assert building == ["gen-000001"]
    name, results = reindex_all(root, extra, audio_params=new_params)
    assert name == "gen-000001" and len(results) == 4  # resumed into the same folder
    assert json.loads((root / CURRENT).read_text()) == {"generation": name}
    fresh = Index(root, audio_params=new_params)
    assert fresh.generation == name and not (root / name / BUILDING).exists()
    assert _sources(fresh) == [
        ("ch1", "show0.wav"),
        ("ch1", "show1.wav"),
        ("ch2", "show2.wav"),
        ("ch2", "show3.wav"),
    ]
    assert all(t.kind == "asset" for t in fresh.audio.tracks().values())  # live not carried
    assert index.swapped() and not fresh.swapped()
    # The next swap deletes the pre-generation layout (two generations back).
    name2, _ = reindex_all(root, [], audio_params=AudioParams())
    assert name2 == "gen-000002" and not (root / "audio").exists()
    assert (root / name).exists()  # the previous one is kept for readers still on it


def test_kill_9_of_a_reindex_leaves_the_last_good_index(tmp_path, recordings):
    data = tmp_path / "data"
    env = {**os.environ, "VIGIE_DATA_DIR": str(data)}
    vigie = [sys.executable, "-m", "service.cli"]
    subprocess.run([*vigie, "channels", "add", "ch1", "--name", "One"], env=env, check=True)
    subprocess.run([*vigie, "reindex", "ch1", recordings[0]], env=env, check=True)
    before = _sources(Index(data / "index"))
    rng = random.Random(7)
    for attempt in range(3):
        proc = subprocess.Popen([*vigie, "reindex", "ch1", *recordings], env=env)
        time.sleep(rng.uniform(1.5, 5.0) + attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        index = Index(data / "index")
        for m in ("audio", "video"):
            store = index.store(m)
            for name in store.segment_names:
                assert Segment.open(store.root / name).verify()
        now = _sources(index)
        assert now in (before, [("ch1", f"show{i}.wav") for i in range(4)])
    done = subprocess.run(
        [*vigie, "reindex", "ch1", *recordings], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "indexed 4 of 4" in done.stdout
    assert _sources(Index(data / "index")) == [("ch1", f"show{i}.wav") for i in range(4)]


def test_query_side_parameters_change_without_a_reindex(tmp_path):
    """Tuning how samples are searched (verification, probes, speed search) keeps the
    index; changing what references store (peaks, hashes) asks for `reindex --all`."""
    root = tmp_path / "index"
    Index(root)
    tuned = AudioParams(verify_candidates=20, query_range_db=15.0, background_frames=60)
    assert Index(root, audio_params=tuned).audio_params.verify_candidates == 20
    for stored in (AudioParams(range_db=10.0), AudioParams(zone_peaks=30)):
        with pytest.raises(ParamsMismatch, match="reindex --all"):
            Index(root, audio_params=stored)
