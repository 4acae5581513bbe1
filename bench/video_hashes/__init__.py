"""Which per-frame hash should Vigie use? pHash vs dHash (64 bits) vs PDQ (256 bits), measured.

``python -m bench.video_hashes [--quick]`` writes ``bench/results/video_hashes.json`` and
``video_hashes.md``. Frame-level only: no index, no voting, so the hashes are compared on
exactly what they are given.

* **Queries.** Each reference clip is cut into segments (``--quick``: one 10 s segment per
  clip; otherwise every non-overlapping 10 s segment); every transformation of
  :data:`bench.video_dataset.VIDEO_TRANSFORMS` is applied to it, the result encoded with
  :func:`~bench.video_dataset.write_clip` at the transformation's bit rate (a key frame every
  2 s) into a temporary folder under ``media-cache/bench-video-hashes/``, and decoded back as
  Vigie decodes a suspect sample (``decode_frames(path, query_fps, width=frame_width)``).
* **True pairs.** The reference is decoded densely (10 frames/s); each query frame is paired
  with the reference frame nearest to it in content time (at most 0.1 s away).
* **Normalisation** exactly as Vigie's: bars from :func:`~fingerprinting.video.bar_boxes`
  (``window=None`` for the short query, ``window=bar_window`` for references), square
  corner-masked :func:`~fingerprinting.video.canonical` pictures (references: the ``WHOLE``
  probe; queries: the probes ``video_query`` hashes, i.e. every probe of
  :func:`~fingerprinting.video.query_probes` plus the picture-in-picture windows that
  :func:`~fingerprinting.video.pip_windows` finds in the sample), frames that
  :func:`~fingerprinting.video.informative` rejects skipped (a query frame whose whole
  picture is rejected does not vote through its windows either, as in ``video_query``).
* **Two query modes.** ``whole``: the query's WHOLE probe only. ``best``: the smallest
  distance over all query probes (mirror, un-crops, picture-in-picture windows), which is
  what Vigie's search sees, and which also gives impostors more chances.
* **Impostors.** Every query frame against every informative frame (5 frames/s) of the
  *other* reference clips and of the negatives (the person clip's first 69 s, the sign
  language clips), hashed the same way, in the same mode. The person clip's rest is the
  background of the ``pip`` transformation, so no query contains an impostor's pictures.
* **Scores.** The acceptance threshold (accept ``d <= t`` bits) is the largest one whose
  impostor rate per frame pair is at most 1e-3 (and 1e-4), pooled over all transformations
  (a deployment has one threshold). Recall is the fraction of true pairs accepted at that
  threshold, per transformation and pooled; ``recall_interp`` interpolates between the two
  integer thresholds around the target rate (randomised acceptance), so 64- and 256-bit
  hashes are compared at exactly the same rate despite their different granularity. AUC is
  ``P(true distance < impostor distance)`` (ties count half). Every pooled difference of
  interpolated recall between two hashes gets a 95 % interval by bootstrapping reference
  segments (the frames of one clip and the 13 transformations of one segment are not
  independent); thresholds are held fixed.
* **Speed.** pHash and dHash through Vigie's batched numpy path, PDQ through
  :func:`fingerprinting.framehash.pdq` (``pdqhash``, one C++ call per frame), on the
  canonical pictures of the references, in a child process pinned to one core
  (``taskset -c 0``); medians over repetitions, CPU and wall time per frame.

PDQ needs the optional ``pdqhash`` package (``.venv/bin/pip install pdqhash``); without it the
report says so and compares the two 64-bit hashes.
"""

# The package (this docstring is also ``--help``): ``hashing`` normalises frames as Vigie does,
# hashes them and measures Hamming distances; ``pairs`` builds the true pairs and impostor
# pools from the clips; ``scoring`` turns them into thresholds, recall, AUC, bootstrap
# intervals and the decision; ``report`` writes the conclusion and Markdown; ``speed`` times
# the hashes on one core; ``__main__`` is the command line. The settings below are shared.

from ..corpus import ROOT

RESULTS = ROOT / "bench" / "results"
SHARED_VIDEO = ROOT.parent / "shared" / "media" / "video"
WORK = ROOT / "media-cache" / "bench-video-hashes"
REFERENCES = (
    "big_buck_bunny_0_30.webm",
    "chaplin.mp4",
    "bottle-detection.mp4",
    "car-detection.mp4",
)
PERSON = "one-by-one-person-detection.mp4"
#: Person clip: frames before this time (s) are impostors, the rest is the PiP background.
PERSON_SPLIT = 69.0
#: Rate (frames/s) at which references are decoded to find each query frame's true pair.
DENSE_FPS = 10.0
#: Largest content-time gap (s) between a query frame and its paired reference frame.
MAX_PAIR_GAP = 0.1
#: Impostor pools are sampled at DENSE_FPS / POOL_STRIDE = 5 frames/s (Vigie's ref_fps).
POOL_STRIDE = 2
NEGATIVE_FPS = 5.0
SEGMENT_SECONDS = 10.0
#: Impostor rates per frame pair at which thresholds are set.
RATES = (1e-2, 1e-3, 1e-4)
MODES = ("best", "whole")
BITS = {"phash": 64, "dhash": 64, "pdq": 256}
LABELS = {"phash": "pHash", "dhash": "dHash", "pdq": "PDQ"}
