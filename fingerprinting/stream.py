"""Push-style reference audio fingerprint of a live feed, equal to the batch fingerprint.

Why: live reference feeds arrive as consecutive PCM chunks of a few seconds, for days. The
batch :func:`fingerprinting.audio.fingerprint` needs the whole signal, and re-running it on
a growing signal would re-compute old audio. :class:`AudioStream` takes the chunks as they
come and returns, after each one, the hashes that became final.

Guarantee: over a whole run, the prints returned by :meth:`AudioStream.push` and
:meth:`AudioStream.finish`, concatenated, hold exactly the ``(hash, frame)`` pairs of
``fingerprint(whole_pcm, p)`` (the same arrays, in the same order), whatever the chunk
sizes, and their ``peaks`` hold each of its peaks once (a peak is returned when no anchor
still pending can need it). Two facts make this hold by construction:

* peaks come from :class:`fingerprinting.peaks.PeakPicker`, which decides them in blocks of
  a grid fixed from the stream's start, each computed from the same samples as in the batch;
* a triplet depends only on its anchor and the peaks within ``p.max_dt`` frames after it
  (:func:`fingerprinting.audio.triplets` looks no further), so an anchor is hashed once all
  peaks up to ``p.max_dt + 1`` frames after it are final (the extra frame covers sub-frame
  refinement and rounding). At the end of a run, :meth:`AudioStream.finish` hashes the rest
  as the batch treats the end of the signal.

Latency: a peak is final when its block of :attr:`PeakPicker.block_frames` frames (65.5 s at
8 kHz) and ``p.context_frames`` after it have arrived; hashes follow ``p.max_dt + 1`` frames
(2 s) later. So a hash comes out between about 2.5 s and 68 s after its audio was pushed.
Live feeds cannot wait a minute (a restream 30 s behind the channel must find its
reference already indexed): they use blocks of
:data:`~fingerprinting.peaks.LIVE_BLOCK_FRAMES` (4.1 s, about 7 s of latency). Blocks on
another grid find the same peaks, but the sub-frame refinement of 3-7 % of them differs in
the last bits of a float64, so the guarantee becomes "the same peaks, times equal to
1e-9 frame" (tested), and a hash whose component sits exactly on a bin edge may differ.

Memory is bounded, whatever the run length and chunk sizes: the PCM of one block and its
context (at most 532 736 samples, 2.1 MB, at the default parameters) and the peaks of the last
``p.max_dt + 2`` frames (a few dozen). No audio is analysed twice, except the context
overlap of neighbouring blocks.

Units: frames are spectrogram frames of ``p.hop_length`` samples (32 ms at 8 kHz), counted
from the stream's first sample; durations are seconds of audio at ``p.sample_rate``.
"""

from __future__ import annotations

import numpy as np

from .audio import hash_triplets
from .params import AudioParams
from .peaks import PeakPicker
from .types import AudioPrint, Peaks

__all__ = ["AudioStream"]


class AudioStream:
    """Reference audio fingerprint of a PCM stream, pushed chunk by chunk.

    Parameters
    ----------
    p : AudioParams
        Fingerprint parameters (the same as the batch fingerprint it must equal).
    block_frames : int or None
        Peak blocks (:class:`PeakPicker`): ``None`` for the batch's grid (bit-equal, up to
        68 s of latency), :data:`~fingerprinting.peaks.LIVE_BLOCK_FRAMES` for live feeds.

    Examples
    --------
    >>> stream = AudioStream()
    >>> parts = [stream.push(chunk) for chunk in chunks]  # doctest: +SKIP
    >>> parts.append(stream.finish())  # doctest: +SKIP
    """

    def __init__(self, p: AudioParams = AudioParams(), block_frames: int | None = None) -> None:
        self.p = p
        self._picker = PeakPicker(p, block_frames=block_frames)
        empty = np.empty(0, np.float64)
        self._pending = Peaks(empty, empty, empty, p.hop_seconds)
        self._final_frame = 0  # every hash with a frame below this has been returned
        self._finished = False

    @property
    def seconds(self) -> float:
        """Audio pushed so far, in seconds."""
        return self._picker.samples / self.p.sample_rate

    @property
    def final_frame(self) -> int:
        """Every hash whose frame is below this has been returned, none at or after it."""
        return self._final_frame

    @property
    def pending_seconds(self) -> float:
        """Audio pushed whose hashes are not all returned yet, in seconds."""
        return max(0.0, self.seconds - self._final_frame * self.p.hop_seconds)

    @property
    def buffered_samples(self) -> int:
        """PCM samples held for the peaks still to decide (at most one block and context)."""
        return self._picker.buffered_samples

    @property
    def pending_peaks(self) -> int:
        """Peaks held: anchors not hashed yet and the zones they need."""
        return len(self._pending)

    def push(self, pcm: np.ndarray) -> AudioPrint:
        """Add the next PCM samples; return the hashes that became final.

        Parameters
        ----------
        pcm : ndarray
            Mono PCM at ``p.sample_rate``, the samples following the previous push (any
            length, converted to float32).

        Returns
        -------
        AudioPrint
            Hashes at frames from the stream's first sample, sorted by frame, all at or
            after the frames of earlier pushes; ``duration_seconds`` is the audio pushed so
            far in total.
        """
        if self._finished:
            raise RuntimeError("push() after finish()")
        new = self._picker.push(pcm)
        if len(new):
            self._pending = Peaks.concat([self._pending, new], self.p.hop_seconds)
        # Anchors below ``cut`` have every peak within max_dt + 1 frames after them final.
        cut = self._picker.final_frame - self.p.max_dt - 1
        if cut <= self._final_frame:  # no block completed since the last hashing
            return self._print(np.empty(0, np.uint32), np.empty(0, np.uint32))
        return self._hash(cut)

    def finish(self) -> AudioPrint:
        """End of the run: return the remaining hashes (the end of the signal is treated as
        the batch fingerprint treats it). Further pushes are refused.

        Returns
        -------
        AudioPrint
            As :meth:`push`.
        """
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        self._pending = Peaks.concat([self._pending, self._picker.finish()], self.p.hop_seconds)
        # Hash frames round a refined peak time below final_frame + 0.5.
        return self._hash(self._picker.final_frame + 1)

    def _hash(self, cut: int) -> AudioPrint:
        """Hash the pending anchors whose frame is below ``cut``; keep the peaks still
        needed."""
        pk = self._pending
        hashes, frames = hash_triplets(pk, self.p)
        n = int(np.searchsorted(frames, cut))  # frames are sorted
        # Same rounding as the hash frames: peaks at frames below ``cut`` are neither
        # anchors nor, being before every later anchor, in any later zone.
        keep = np.floor(pk.frames + 0.5) >= cut
        self._pending = Peaks(pk.frames[keep], pk.bins[keep], pk.levels[keep], pk.hop_seconds)
        self._final_frame = cut
        done = ~keep
        final = Peaks(pk.frames[done], pk.bins[done], pk.levels[done], pk.hop_seconds)
        return self._print(hashes[:n], frames[:n], final)

    def _print(
        self, hashes: np.ndarray, frames: np.ndarray, peaks: Peaks | None = None
    ) -> AudioPrint:
        empty = np.empty(0, np.float64)
        return AudioPrint(
            hashes=hashes,
            frames=frames,
            hop_seconds=self.p.hop_seconds,
            duration_seconds=self.seconds,
            peaks=peaks if peaks is not None else Peaks(empty, empty, empty, self.p.hop_seconds),
        )
