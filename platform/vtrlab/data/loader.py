"""Streaming train and eval loaders over the shards of a built dataset (local path, file:// or s3://).

Batches (dicts) as the model and training code expect them:

- train (:func:`make_train_loader`): ``frames`` uint8 [B, F, 3, H, W] (RGB, unnormalised), ``frame_mask``
  bool [B, F] (True = real frame; clips with fewer stored frames than F are zero-padded at the end),
  ``tokens`` int64 [B, max_words] (the loader's tokenizer; default open_clip's BPE, :func:`vtrlab.text.tokenize`),
  ``video_id`` list[str], ``caption`` list[str], ``video_key`` int64 [B] (:func:`video_key` of each
  ``video_id``: what the loss needs to tell two captions of one video apart from a negative).
- eval (:func:`make_eval_loader`): ``frames``, ``frame_mask``, ``video_id`` as above, one row per VIDEO;
  ``captions`` list[list[str]] (all captions of each video, in stored order), ``tokens`` int64
  [total captions in batch, max_words] and ``caption_video_index`` int64 [total captions] (row of each
  caption's video in this batch).

Frame sampling (:mod:`vtrlab.data.frames`): CLIP4Clip's frames, ``linspace(0, n - 1, F, dtype=int)`` of a
clip's ``n`` 1-fps frames, for evaluation and, by default, for training; a build stores exactly those for
the card's frame count (each sample records the 1-fps positions of its stored frames). ``jitter=True`` on
the training loader takes instead a random stored frame from each frame's segment (a build with
``stored_frames`` > F stores extras for that). A loader asked for another F than the build's takes the
nearest stored frames and says so once. Clips with fewer than F frames are padded (mask False). Samples
without positions (synthetic data) count their stored frames as the 1-fps frames.

Training streams are "resampled": every (rank, DataLoader worker) draws shards uniformly at random with
replacement and, on each visit of a shard, emits each of its videos with about ``c / c_mean`` of its ``c``
captions (``c_mean``: the split's captions per video; exactly one for equal counts, e.g. MSR-VTT's 20;
systematic rounding over the visits otherwise), taking its captions in a random order without repeats
until all have been used. So every (video, caption) pair is drawn once per epoch in expectation, as in
CLIP4Clip's uniform shuffle of all pairs, and a batch is about as diverse as one of that shuffle: the
captions of one video are spread over the epoch instead of sitting side by side. The share of a batch's
pairs that have a same-video twin in the batch is at most about ``(B - 1) / videos`` (uniform shuffle:
``(B - 1) (c - 1) / captions``, which is nearly the same for ``c`` >= 5). Measured for MSR-VTT- and
MSVD-shaped data by ``bench/data_throughput.py``, tested against the uniform share within a factor 2.
The pairs then pass through a shuffle buffer (``shuffle_buffer`` pairs, mixing shards) and are batched. A
buffered pair holds a reference to its video's compressed sample, never decoded frames (frames are
decoded when the pair leaves the buffer), and one visit emits (almost always) one pair per video, so the
buffer holds about ``shuffle_buffer`` compressed videos (about 120 MB per worker at the default 500 with 16
JPEG frames of 224 px); the diversity does not depend on the buffer's size. The price is I/O: a video's
bytes are read once per pair (as CLIP4Clip loads a video per pair), not once per epoch. Every worker of
every rank yields exactly ``ceil(epoch_batches / num_workers)`` batches, so every rank yields the same
number of batches per epoch (``len(loader)``) and nothing waits for a shard that some rank does not have:
there is no hang with fewer shards than ranks x workers. ``epoch_batches`` defaults to
``captions // (batch_size * world_size)``. Randomness is a function of (seed, epoch, rank, worker):
iterating the loader again starts the next epoch (or call ``loader.set_epoch(e)``).

Evaluation splits the split's samples (manifest order: shards in order, samples in shard order) into
``world_size`` contiguous blocks; rank r reads only the shards overlapping its block, so every video is
yielded exactly once across ranks, in a deterministic order (rank blocks concatenated in rank order give
the manifest order). With DataLoader workers each worker takes a contiguous sub-block and the DataLoader
interleaves their batches: still deterministic, and each batch's ``video_id`` says what it holds. A rank
may get no video (more ranks than videos): it yields no batch.

Decoding: ``decode="cpu"`` (default) decodes the sampled JPEG/PNG frames in the loader (DataLoader
workers build each batch directly in shared memory). ``decode="device"`` hands the sampled frames' JPEG
bytes on instead (``frames_jpeg`` + ``frames_jpeg_sizes``, no ``frames``), and the training step calls
:func:`decode_frames` to decode them on the GPU (nvJPEG); see docs/performance.md, "Data loading".

Broken shards: a truncated or corrupt shard (or one whose sha256 differs from the manifest's, checked
once a shard has been read to its end) raises :class:`~vtrlab.errors.DataError` naming its URL
(``on_error="raise"``, default) or is reported with a RuntimeWarning and skipped (``on_error="skip"``).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vtrlab import storage
from vtrlab.data.frames import select_frames
from vtrlab.data.shards import RawSample, iter_shard_safe, manifest_split, read_manifest
from vtrlab.errors import ConfigError, DataError
from vtrlab.text import Tokenizer, tokenize

__all__ = [
    "decode_frames",
    "frame_indices",
    "make_eval_loader",
    "make_train_loader",
    "twin_share",
    "uniform_twin_share",
    "video_key",
]

DECODE_MODES = ("cpu", "device")


def frame_indices(s: RawSample, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices into sample ``s``'s stored frames for a clip of ``num_frames`` (``min(n, num_frames)`` long):
    CLIP4Clip's frames; with ``rng``, one random stored frame of each frame's segment (training jitter)."""
    sampling = (s.meta.get("meta") or {}).get("sampling")
    if sampling:
        return select_frames(sampling["positions"], sampling["n"], num_frames, rng)
    return select_frames(np.arange(s.num_frames), s.num_frames, num_frames, rng)


def video_key(video_id: str) -> int:
    """A stable signed 64-bit key of a video id (blake2b): the same in every process, run and machine."""
    digest = hashlib.blake2b(video_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def twin_share(video_ids: list[str]) -> float:
    """The share of a batch's pairs whose video has another pair in the batch (a same-video twin)."""
    _, inverse, counts = np.unique(np.asarray(video_ids, dtype=object), return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean()) if len(video_ids) else 0.0


def uniform_twin_share(captions_per_video: list[int] | np.ndarray, batch_size: int) -> float:
    """The expected :func:`twin_share` of a batch drawn uniformly without replacement from all (video,
    caption) pairs of videos with these caption counts (CLIP4Clip's shuffle). Exact (hypergeometric)."""
    c = np.asarray(captions_per_video, dtype=np.float64)
    n, k = c.sum(), batch_size - 1  # the other pairs of the batch, drawn from the other n - 1 pairs

    def log_choose(a: np.ndarray | float, b: float) -> np.ndarray:
        return _lgamma(a + 1) - _lgamma(b + 1) - _lgamma(a - b + 1)

    free = n - c  # pairs of other videos
    p_alone = np.exp(log_choose(free, k) - log_choose(n - 1, k))
    p_alone = np.where(free >= k, p_alone, 0.0)
    return float((c / n * (1.0 - p_alone)).sum())


def _lgamma(x: np.ndarray | float) -> np.ndarray:
    return torch.lgamma(torch.as_tensor(np.maximum(x, 0.0), dtype=torch.float64)).numpy()


def _decode(s: RawSample, num_frames: int, rng: np.random.Generator | None, on_error: str) -> torch.Tensor | None:
    """The sampled frames of one sample ([n, 3, H, W] uint8), or None when they cannot be decoded and
    ``on_error == "skip"``."""
    try:
        return s.decode_chw(frame_indices(s, num_frames, rng))
    except DataError as exc:
        if on_error != "skip":
            raise
        warnings.warn(f"skipping sample: {exc}", RuntimeWarning, stacklevel=2)
        return None


def _new_frames(shape: tuple[int, ...]) -> torch.Tensor:
    """A zeroed uint8 tensor; inside a DataLoader worker allocated in shared memory right away, so that
    handing the batch to the main process does not copy it again (as torch's default_collate does)."""
    if get_worker_info() is None:
        return torch.zeros(shape, dtype=torch.uint8)
    numel = math.prod(shape)
    storage = torch.UntypedStorage._new_shared(numel)
    return torch.empty(0, dtype=torch.uint8).set_(storage, 0, shape).zero_()


def _frames_batch(samples: list[RawSample], arrays: list[torch.Tensor], num_frames: int):
    h, w = arrays[0].shape[-2:]
    out = _new_frames((len(samples), num_frames, 3, h, w))
    mask = torch.zeros((len(samples), num_frames), dtype=torch.bool)
    for i, a in enumerate(arrays):
        if tuple(a.shape[-2:]) != (h, w):
            raise DataError(
                f"{samples[i].url}: sample {samples[i].meta.get('video_id')!r} has frames "
                f"{tuple(a.shape[-2:])}, others in the batch {(h, w)}"
            )
        n = a.shape[0]
        out[i, :n] = a
        mask[i, :n] = True
    return out, mask


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} / world_size {world_size}: expected 0 <= rank < world_size")


class _DatasetBase(IterableDataset):
    def __init__(
        self,
        url: str,
        split: str,
        batch_size: int,
        num_frames: int,
        max_words: int,
        on_error: str,
        verify: bool,
    ):
        if batch_size < 1 or num_frames < 1 or max_words < 2:
            raise ConfigError(
                f"batch_size {batch_size}, num_frames {num_frames}, max_words {max_words}: expected "
                "batch_size >= 1, num_frames >= 1, max_words >= 2"
            )
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error {on_error!r}: expected 'raise' or 'skip'")
        url = storage.normalize_url(url)
        self.url, self.split = url, split
        self.manifest = read_manifest(url)
        self.info = manifest_split(self.manifest, split, url)
        self.shards = [{**s, "url": storage.join_url(url, s["path"])} for s in self.info["shards"]]
        if not self.shards:
            raise DataError(f"{url}: split {split!r} has no shard (all its videos were skipped?)")
        self.batch_size, self.num_frames, self.max_words = batch_size, num_frames, max_words
        self.on_error, self.verify = on_error, verify
        self._check_frames()

    decode = "cpu"
    tokenizer: Tokenizer | None = None  # None: open_clip's BPE (vtrlab.text.tokenize)

    def tokens(self, texts: list[str]) -> torch.Tensor:
        """Token ids int64 [len(texts), max_words] from the loader's tokenizer."""
        return (self.tokenizer or tokenize)(texts, self.max_words).long()

    def set_decode(self, decode: str) -> None:
        """``cpu`` (default): batches carry decoded ``frames``. ``device``: batches carry, instead, the
        sampled frames' JPEG bytes, ``frames_jpeg`` (uint8 [total bytes], concatenated in clip-major,
        frame-minor order) and ``frames_jpeg_sizes`` (int64 [B, F], 0 for padding), for
        :func:`decode_frames` to decode on the training device (nvJPEG on CUDA). Needs JPEG shards."""
        if decode not in DECODE_MODES:
            raise ConfigError(f"decode {decode!r}: expected one of {', '.join(DECODE_MODES)}")
        fmt = self.manifest.get("options", {}).get("frame_format")
        if decode == "device" and fmt != "jpg":
            raise ConfigError(f"{self.url}: decode='device' needs JPEG frames; these shards store {fmt!r}")
        self.decode = decode

    def _frames_of(self, s: RawSample, rng: np.random.Generator | None):
        if self.decode == "device":
            return [s.frames[i] for i in frame_indices(s, self.num_frames, rng)]
        return _decode(s, self.num_frames, rng, self.on_error)

    def _frames_entries(self, samples: list[RawSample], arrays: list) -> dict:
        if self.decode == "device":
            # two tensors per batch (not one per frame): cheap to pass from DataLoader workers
            sizes = torch.zeros((len(samples), self.num_frames), dtype=torch.long)
            for i, a in enumerate(arrays):
                sizes[i, : len(a)] = torch.tensor([len(x) for x in a], dtype=torch.long)
            data = bytearray(b"".join(x for a in arrays for x in a))
            return {
                "frames_jpeg": torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8),
                "frames_jpeg_sizes": sizes,
                "frame_mask": sizes > 0,
            }
        frames, mask = _frames_batch(samples, arrays, self.num_frames)
        return {"frames": frames, "frame_mask": mask}

    def _read(self, shard: dict) -> Iterator[RawSample]:
        """The samples of a shard; one that ends before the manifest's sample count (truncated at a member
        boundary, which a tar reader takes for the end) is an error, or a warning with ``on_error="skip"``."""
        count = 0
        for sample in iter_shard_safe(shard["url"], self.on_error, shard["sha256"] if self.verify else None):
            count += 1
            yield sample
        if count != shard["samples"]:
            message = (
                f"{shard['url']}: the shard holds {count} samples, the manifest says {shard['samples']} "
                "(truncated or replaced since the build; rebuild it)"
            )
            if self.on_error != "skip":
                raise DataError(message)
            warnings.warn(f"skipping the rest of a shard: {message}", RuntimeWarning, stacklevel=2)

    def _check_frames(self) -> None:
        """Say once when the loader's frame count is not the one the build stored CLIP4Clip's frames for."""
        built = (self.manifest.get("frames") or {}).get("eval_frames")
        if built is not None and built != self.num_frames:
            warnings.warn(
                f"{self.url}: built with CLIP4Clip's {built} frames a clip, read with {self.num_frames}: the "
                f"nearest stored frames stand in (rebuild with --num-frames {self.num_frames} for exact ones)",
                RuntimeWarning,
                stacklevel=3,
            )


class TrainStream(_DatasetBase):
    """The resampled training stream of one rank (see the module docstring).

    ``shuffle_buffer``: (clip, caption) pairs held per worker for shuffling (each a reference to its
    video's compressed sample; about one compressed video per pair).
    """

    def __init__(
        self,
        url,
        split,
        *,
        batch_size,
        num_frames,
        max_words,
        num_workers=0,
        rank=0,
        world_size=1,
        seed=0,
        epoch_batches=None,
        shuffle_buffer=500,
        on_error="raise",
        verify=True,
        jitter=False,
    ):
        super().__init__(url, split, batch_size, num_frames, max_words, on_error, verify)
        _check_rank(rank, world_size)
        self.rank, self.world_size, self.seed, self.jitter = rank, world_size, seed, jitter
        self.num_workers = max(1, num_workers)
        if epoch_batches is None:
            epoch_batches = max(1, self.info["captions"] // (batch_size * world_size))
        if epoch_batches < 1:
            raise ConfigError(f"epoch_batches {epoch_batches}: expected >= 1")
        self.epoch_batches = epoch_batches
        self.batches_per_worker = math.ceil(epoch_batches / self.num_workers)
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.epoch = 0
        self.captions_per_video = max(1, self.info["captions"]) / max(1, self.info["samples"])

    def __len__(self) -> int:
        return self.batches_per_worker * self.num_workers

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _visit_captions(self, captions: list[str], visit: int, seed: list[int]) -> list[str]:
        """The captions a video emits on its ``visit``-th visit (0-based) in this epoch and worker.

        Visit ``j`` emits positions ``[floor(j x + u), floor((j + 1) x + u))`` of a random permutation of
        the captions (cyclically), ``x = c / c_mean``, ``u`` uniform: ``x`` per visit on average (exactly
        one when ``x == 1``), without repeats until all ``c`` are used. ``u`` and the permutation are fixed
        per video by ``seed``, so no per-video state is kept.
        """
        c = len(captions)
        if c == 0:
            return []
        g = np.random.default_rng(seed)
        x, u = c / self.captions_per_video, g.random()
        lo, hi = math.floor(visit * x + u), math.floor((visit + 1) * x + u)
        if hi == lo:
            return []
        order = g.permutation(c)
        return [captions[order[k % c]] for k in range(lo, hi)]

    def _pairs(self, rng: np.random.Generator, wid: int) -> Iterator[tuple[RawSample, str]]:
        """(sample, caption) pairs of shard visits: shards drawn uniformly, each video's captions spread
        over its visits (see the module docstring)."""
        visits = np.zeros(len(self.shards), dtype=np.int64)
        empty_run = 0
        while True:
            si = int(rng.integers(len(self.shards)))
            visit = int(visits[si])
            visits[si] += 1
            got = False
            for i, s in enumerate(self._read(self.shards[si])):
                got = True
                seed = [self.seed, self.epoch, self.rank, wid, si, i, 11]
                for cap in self._visit_captions(s.meta["captions"], visit, seed):
                    yield s, cap
            empty_run = 0 if got else empty_run + 1
            if empty_run > 4 * len(self.shards) + 10:
                raise DataError(f"{self.url}: split {self.split!r}: no readable sample in any shard")

    def __iter__(self) -> Iterator[dict]:
        wid, nw = _worker()
        if nw != self.num_workers:
            # DataLoader with another worker count than announced: keep the per-rank total
            self.num_workers = nw
            self.batches_per_worker = math.ceil(self.epoch_batches / nw)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, wid, 7])
        pairs = self._pairs(rng, wid)
        buf: list[tuple[RawSample, str]] = []
        batch: list[tuple[RawSample, str, torch.Tensor]] = []
        produced = 0
        try:
            while produced < self.batches_per_worker:
                while len(buf) < self.shuffle_buffer:
                    buf.append(next(pairs))
                k = int(rng.integers(len(buf)))
                buf[k], buf[-1] = buf[-1], buf[k]
                s, cap = buf.pop()
                arr = self._frames_of(s, rng if self.jitter else None)
                if arr is None:
                    continue
                batch.append((s, cap, arr))
                if len(batch) == self.batch_size:
                    yield self._collate(batch, rng)
                    produced += 1
                    batch = []
        finally:
            pairs.close()

    def _collate(self, batch: list[tuple[RawSample, str, torch.Tensor]], rng) -> dict:
        samples = [s for s, _, _ in batch]
        caps = [c for _, c, _ in batch]
        ids = [s.meta["video_id"] for s in samples]
        return {
            **self._frames_entries(samples, [a for _, _, a in batch]),
            "tokens": self.tokens(caps),
            "video_id": ids,
            "caption": caps,
            "video_key": torch.tensor([video_key(v) for v in ids], dtype=torch.long),
        }


class EvalStream(_DatasetBase):
    """Every video of a split once across ranks, deterministic order (see the module docstring)."""

    def __init__(
        self,
        url,
        split,
        *,
        batch_size,
        num_frames,
        max_words,
        rank=0,
        world_size=1,
        num_workers=0,
        on_error="raise",
        verify=True,
    ):
        super().__init__(url, split, batch_size, num_frames, max_words, on_error, verify)
        _check_rank(rank, world_size)
        self.rank, self.world_size = rank, world_size
        self.num_workers = max(1, num_workers)
        n = self.info["samples"]
        self.lo, self.hi = rank * n // world_size, (rank + 1) * n // world_size

    @property
    def num_videos(self) -> int:
        """Videos this rank yields."""
        return self.hi - self.lo

    def _worker_range(self, wid: int, nw: int) -> tuple[int, int]:
        span = self.hi - self.lo
        return self.lo + wid * span // nw, self.lo + (wid + 1) * span // nw

    def __len__(self) -> int:
        """Batches this rank yields (each DataLoader worker batches its own contiguous sub-block)."""
        nw = self.num_workers
        return sum(math.ceil((b - a) / self.batch_size) for a, b in map(lambda w: self._worker_range(w, nw), range(nw)))

    def _samples(self, lo: int, hi: int) -> Iterator[RawSample]:
        off = 0
        for shard in self.shards:
            n = shard["samples"]
            if off + n > lo and off < hi:
                for i, s in enumerate(self._read(shard)):
                    g = off + i
                    if g >= hi:
                        break
                    if g >= lo:
                        yield s
            off += n
            if off >= hi:
                break

    def __iter__(self) -> Iterator[dict]:
        wid, nw = _worker()
        lo, hi = self._worker_range(wid, nw)
        batch: list[tuple[RawSample, torch.Tensor]] = []
        for s in self._samples(lo, hi):
            arr = self._frames_of(s, None)
            if arr is None:
                continue
            batch.append((s, arr))
            if len(batch) == self.batch_size:
                yield self._collate(batch)
                batch = []
        if batch:
            yield self._collate(batch)

    def _collate(self, batch: list[tuple[RawSample, torch.Tensor]]) -> dict:
        samples = [s for s, _ in batch]
        captions = [list(s.meta["captions"]) for s in samples]
        flat = [c for cs in captions for c in cs]
        index = [i for i, cs in enumerate(captions) for _ in cs]
        return {
            **self._frames_entries(samples, [a for _, a in batch]),
            "video_id": [s.meta["video_id"] for s in samples],
            "captions": captions,
            "tokens": self.tokens(flat),
            "caption_video_index": torch.tensor(index, dtype=torch.long),
        }


class StreamLoader:
    """A DataLoader over a stream; iterating it again starts the next epoch (``set_epoch`` to choose)."""

    def __init__(
        self,
        dataset: TrainStream | EvalStream,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
    ):
        self.dataset = dataset
        self.num_workers = num_workers
        kw = {}
        if num_workers > 0 and prefetch_factor:
            kw["prefetch_factor"] = prefetch_factor
        self.dataloader = DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **kw)
        self._epoch = 0
        self._explicit = False

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)
        self._explicit = True

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        if isinstance(self.dataset, TrainStream):
            self.dataset.set_epoch(self._epoch)
        if not self._explicit:
            self._epoch += 1
        self._explicit = False
        return iter(self.dataloader)


def make_train_loader(
    url: str,
    split: str,
    *,
    batch_size: int,
    num_frames: int,
    max_words: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    epoch_batches: int | None = None,
    shuffle_buffer: int = 500,
    on_error: str = "raise",
    decode: str = "cpu",
    verify: bool = True,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    jitter: bool = False,
    tokenizer: Tokenizer | None = None,
) -> StreamLoader:
    """The training loader of one data-parallel rank (see the module docstring).

    ``shuffle_buffer``: (clip, caption) pairs held for shuffling per worker, each referencing its video's
    compressed sample (not decoded frames; about one video per pair); ``on_error``: "raise" or
    "skip" for broken shards; ``verify``: check each fully read shard's sha256 against the manifest;
    ``decode``: "cpu" (frames decoded in the loader) or "device" (JPEG bytes handed on; call
    :func:`decode_frames` on the training device); ``jitter``: a random stored frame of each frame's
    segment instead of CLIP4Clip's frames (default off: training sees the frames evaluation sees);
    ``tokenizer``: ``(texts, max_words) -> int64 tokens`` (default open_clip's BPE, :mod:`vtrlab.text`).
    """
    ds = TrainStream(
        url,
        split,
        batch_size=batch_size,
        num_frames=num_frames,
        max_words=max_words,
        num_workers=num_workers,
        rank=rank,
        world_size=world_size,
        seed=seed,
        epoch_batches=epoch_batches,
        shuffle_buffer=shuffle_buffer,
        on_error=on_error,
        verify=verify,
        jitter=jitter,
    )
    ds.set_decode(decode)
    ds.tokenizer = tokenizer
    return StreamLoader(ds, num_workers=num_workers, pin_memory=pin_memory, prefetch_factor=prefetch_factor)


def make_eval_loader(
    url: str,
    split: str,
    *,
    batch_size: int,
    num_frames: int,
    max_words: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    on_error: str = "raise",
    decode: str = "cpu",
    verify: bool = True,
    pin_memory: bool = False,
    tokenizer: Tokenizer | None = None,
) -> StreamLoader:
    """The evaluation loader of one rank: every video of ``split`` once across ranks, all its captions
    (``tokenizer``: ``(texts, max_words) -> int64 tokens``; default open_clip's BPE, :mod:`vtrlab.text`)."""
    ds = EvalStream(
        url,
        split,
        batch_size=batch_size,
        num_frames=num_frames,
        max_words=max_words,
        rank=rank,
        world_size=world_size,
        num_workers=num_workers,
        on_error=on_error,
        verify=verify,
    )
    ds.set_decode(decode)
    ds.tokenizer = tokenizer
    return StreamLoader(ds, num_workers=num_workers, pin_memory=pin_memory)


def decode_frames(batch: dict, device: torch.device | str = "cuda") -> dict:
    """Decode a ``decode="device"`` batch on ``device`` (one batched nvJPEG call on CUDA, libjpeg-turbo on
    the CPU): returns the batch with ``frames`` uint8 [B, F, 3, H, W] on ``device`` (padded frames zero) in
    place of ``frames_jpeg`` / ``frames_jpeg_sizes``; equal to what ``decode="cpu"`` yields."""
    import torchvision.io as tio

    sizes = batch["frames_jpeg_sizes"]
    flat = list(torch.split(batch["frames_jpeg"], sizes[sizes > 0].tolist()))
    device = torch.device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if device.type == "cuda":
            images = tio.decode_jpeg(flat, mode=tio.ImageReadMode.RGB, device=device)
        else:
            images = [tio.decode_jpeg(t, mode=tio.ImageReadMode.RGB) for t in flat]
    b, f = sizes.shape
    h, w = images[0].shape[-2:]
    frames = torch.zeros((b, f, 3, h, w), dtype=torch.uint8, device=device)
    frames[(sizes > 0).to(device)] = torch.stack(images)
    out = {k: v for k, v in batch.items() if k not in ("frames_jpeg", "frames_jpeg_sizes")}
    out["frames"] = frames
    return out
