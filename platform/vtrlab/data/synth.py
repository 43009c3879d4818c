"""``vtrlab data synth``: a synthetic temporal video-text benchmark plus a static image-caption set.

Clips are 16 frames of 32x32 px showing coloured shapes (5 colours x 3 shapes). Time is cut into one
segment per event; during its segment one object performs one action, and it is visible only then:

    slides left | slides right | slides up | slides down | appears | disappears

A 2-event clip is captioned in order, e.g. "a red square slides left, then a blue circle appears".
For every clip its REVERSE-ORDER twin (same events, opposite order: "a blue circle appears, then a red
square slides left") is in the same split. The two contain exactly the same frames in a different
order, so a model that ignores frame order (mean pooling of per-frame embeddings) cannot tell them apart,
and a temporal model can. Train and test event pairs are disjoint.

Splits (counts for ``small`` / ``demo`` / ``medium``):

    train           multi-caption  2 events, 3 paraphrases per clip          256 / 2048 / 4000 clips
    test            one-caption    2 events, 1 caption                        64 /  512 / 500
    test_multi      multi-caption  2 events, 3 paraphrases (each a query)     32 /   64 / 200
    test_paragraph  paragraph      3 events ("... . then ... . then ...")     32 /   64 / 200
    images          one-caption    a single frame with 1-2 static shapes ("a red square and a blue
                                   circle"), to pretrain a tiny CLIP backbone    512 /  512 / 8000

``demo`` is what `vtrlab quickstart` runs: 512 test clips (256 reverse-order pairs), so one clip is 0.2
points of R@1 and a 95% interval about +-2 points, narrow enough to tell an order-aware method from an
order-blind one in a few minutes of CPU training. A model blind to frame order cannot rank a clip above its
twin except by chance, and neither can it tell "slides left" from "slides right", "up" from "down" or
"appears" from "disappears" (the same frames reversed).

Everything is a function of the seed: two runs with the same seed write byte-identical shards (and the
same manifest ``version``). Frames are stored as PNG (lossless; tiny).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

import numpy as np

from vtrlab import storage
from vtrlab.data.build import assemble_manifest, check_out
from vtrlab.data.card import load_card
from vtrlab.data.shards import MANIFEST, ClipRecord, write_shard
from vtrlab.errors import ConfigError

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (225, 40, 40),
    "green": (40, 190, 70),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 210),
}
SHAPES = ("square", "circle", "triangle")
ACTIONS = ("slides left", "slides right", "slides up", "slides down", "appears", "disappears")
SIZES: dict[str, dict[str, int]] = {
    "small": {"train": 256, "test": 64, "test_multi": 32, "test_paragraph": 32, "images": 512},
    "demo": {"train": 2048, "test": 512, "test_multi": 64, "test_paragraph": 64, "images": 512},
    "medium": {"train": 4000, "test": 500, "test_multi": 200, "test_paragraph": 200, "images": 8000},
}
PROTOCOLS = {
    "train": "multi-caption",
    "test": "one-caption",
    "test_multi": "multi-caption",
    "test_paragraph": "paragraph",
    "images": "one-caption",
}
FRAMES = 16
SIZE = 32
BACKGROUND = (18, 18, 22)

Event = tuple[str, str, str]  # (colour, shape, action)


def _mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "triangle":  # apex up
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2.0 + 0.5)
    raise ValueError(shape)


def _draw(canvas: np.ndarray, color: str, shape: str, cx: float, cy: float, r: float) -> None:
    canvas[_mask(shape, cx, cy, r)] = COLORS[color]


def _render_event(ev: Event, n: int, rng: np.random.Generator) -> np.ndarray:
    """n frames of one event; the object is visible only during its own segment."""
    color, shape, action = ev
    frames = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    frames[:] = BACKGROUND
    r = float(rng.uniform(4.5, 6.0))
    lo, hi = r + 1.5, SIZE - r - 2.5
    cx, cy = float(rng.uniform(lo + 4, hi - 4)), float(rng.uniform(lo + 4, hi - 4))
    t = np.linspace(0.0, 1.0, n)
    for i in range(n):
        x, y, visible = cx, cy, True
        if action == "slides left":
            x = hi - (hi - lo) * t[i]
        elif action == "slides right":
            x = lo + (hi - lo) * t[i]
        elif action == "slides up":
            y = hi - (hi - lo) * t[i]
        elif action == "slides down":
            y = lo + (hi - lo) * t[i]
        elif action == "appears":
            visible = i >= n // 2
        elif action == "disappears":
            visible = i < n // 2
        if visible:
            _draw(frames[i], color, shape, x, y, r)
    return frames


def render_clip(events: list[Event], rng: np.random.Generator, num_frames: int = FRAMES) -> np.ndarray:
    """uint8 [num_frames, 32, 32, 3]: the events in order, one equal segment each."""
    bounds = np.linspace(0, num_frames, len(events) + 1).round().astype(int)
    parts = [_render_event(ev, int(b - a), rng) for ev, a, b in zip(events, bounds[:-1], bounds[1:], strict=True)]
    return np.concatenate(parts)


def phrase(ev: Event) -> str:
    return f"a {ev[0]} {ev[1]} {ev[2]}"


def captions_2(e1: Event, e2: Event) -> list[str]:
    """Three paraphrases of "e1, then e2" (the third names e2 first: order is carried by the words)."""
    return [
        f"{phrase(e1)}, then {phrase(e2)}",
        f"first {phrase(e1)}, and after that {phrase(e2)}",
        f"{phrase(e2)} after {phrase(e1)}",
    ]


def paragraph(events: list[Event]) -> str:
    return " ".join([f"{phrase(events[0])}."] + [f"then {phrase(e)}." for e in events[1:]])


def _events() -> list[Event]:
    return [(c, s, a) for c in COLORS for s in SHAPES for a in ACTIONS]


def _record(vid: str, caps: list[str], frames: np.ndarray, events: list[Event] | None) -> ClipRecord:
    meta = {"events": [list(e) for e in events]} if events else {}
    return ClipRecord(vid, caps, frames, 0.0, float(len(frames)), None, meta)


def _pairs(rng: np.random.Generator) -> list[tuple[Event, Event]]:
    evs = _events()
    pairs = [(a, b) for a, b in itertools.combinations(evs, 2) if (a[0], a[1]) != (b[0], b[1])]
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def generate(size: str = "small", seed: int = 0) -> dict[str, list[ClipRecord]]:
    """All splits' records in memory (deterministic for ``seed``)."""
    if size not in SIZES:
        raise ConfigError(f"--size {size!r}: expected one of {', '.join(SIZES)}")
    counts = SIZES[size]
    rng = np.random.default_rng([seed, 20240501])
    pairs = _pairs(rng)
    out: dict[str, list[ClipRecord]] = {}
    cursor = 0
    for split in ("train", "test", "test_multi"):
        n_pairs = counts[split] // 2
        chosen = pairs[cursor : cursor + n_pairs]
        cursor += n_pairs
        recs = []
        for j, (a, b) in enumerate(chosen):
            srng = np.random.default_rng([seed, hash_split(split), j])
            seg_a = _render_event(a, FRAMES // 2, srng)
            seg_b = _render_event(b, FRAMES // 2, srng)
            for k, (e1, e2, f) in enumerate(((a, b, (seg_a, seg_b)), (b, a, (seg_b, seg_a)))):
                caps = captions_2(e1, e2)
                if split == "test":
                    caps = caps[:1]
                recs.append(_record(f"{split}-{j:05d}-{'ab'[k]}", caps, np.concatenate(f), [e1, e2]))
        out[split] = recs
    # paragraph split: 3 events, plus the reversed order
    evs = _events()
    recs = []
    seen: set = set()
    prng = np.random.default_rng([seed, hash_split("test_paragraph")])
    j = 0
    while len(recs) < counts["test_paragraph"]:
        idx = prng.choice(len(evs), size=3, replace=False)
        trio = [evs[i] for i in idx]
        if len({(e[0], e[1]) for e in trio}) < 3 or tuple(idx) in seen or tuple(idx[::-1]) in seen:
            continue
        seen.add(tuple(idx))
        bounds = np.linspace(0, FRAMES, 4).round().astype(int)
        segs = [_render_event(e, int(b1 - b0), prng) for e, b0, b1 in zip(trio, bounds[:-1], bounds[1:], strict=True)]
        # reversed twin: segments in reverse order (segment lengths may differ by one frame)
        fwd = np.concatenate(segs)
        rev = np.concatenate(segs[::-1])
        recs.append(_record(f"test_paragraph-{j:05d}-a", [paragraph(trio)], fwd, trio))
        recs.append(_record(f"test_paragraph-{j:05d}-b", [paragraph(trio[::-1])], rev, trio[::-1]))
        j += 1
    out["test_paragraph"] = recs[: counts["test_paragraph"]]
    # static images
    irng = np.random.default_rng([seed, hash_split("images")])
    objs = [(c, s) for c in COLORS for s in SHAPES]
    recs = []
    for j in range(counts["images"]):
        k = 1 if irng.random() < 0.5 else 2
        pick = [objs[i] for i in irng.choice(len(objs), size=k, replace=False)]
        img = np.empty((1, SIZE, SIZE, 3), dtype=np.uint8)
        img[:] = BACKGROUND
        xs = [SIZE / 2] if k == 1 else [SIZE * 0.28, SIZE * 0.72]
        for (c, s), x in zip(pick, xs, strict=True):
            r = float(irng.uniform(4.5, 6.5)) if k == 2 else float(irng.uniform(5.0, 9.0))
            _draw(img[0], c, s, x + irng.uniform(-2, 2), SIZE / 2 + irng.uniform(-6, 6), r)
        cap = " and ".join(f"a {c} {s}" for c, s in pick)
        recs.append(_record(f"images-{j:06d}", [cap], img, None))
    out["images"] = recs
    return out


def hash_split(split: str) -> int:
    """A stable small integer per split name (Python's hash() is salted per process)."""
    return int.from_bytes(split.encode()[:8].ljust(8, b"\0"), "little") % (2**31)


def synth(out: str, size: str = "small", seed: int = 0, progress: Callable[[dict], None] | None = None) -> dict:
    """Write the synthetic benchmark's shards + manifest to ``out``; returns the manifest."""
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed {seed!r}: expected an integer >= 0")
    check_out(out)
    card = load_card("synthetic")
    data = generate(size, seed)
    store = storage.open_store(out)
    opts = {
        "stored_frames": FRAMES,
        "image_size": SIZE,
        "fps": card.fps,
        "frame_format": card.frame_format,
        "jpeg_quality": card.jpeg_quality,
        "shard_samples": card.shard_samples,
    }
    stats = []
    n = card.shard_samples
    for split, recs in data.items():
        for si, lo in enumerate(range(0, len(recs), n)):
            st = write_shard(
                store,
                split,
                si,
                recs[lo : lo + n],
                first_sample_index=lo,
                frame_format=opts["frame_format"],
                plan_hash=f"synth:{size}:{seed}",
            )
            stats.append(st)
            if progress:
                progress(st)
    expected = {s: {"videos": len(r), "captions": sum(len(x.captions) for x in r)} for s, r in data.items()}
    man = assemble_manifest(
        "synthetic",
        card,
        opts,
        list(data),
        stats,
        {},
        protocols=PROTOCOLS,
        expected=expected,
        extra={"synthetic": {"size": size, "seed": seed}},
    )
    store.write_text(MANIFEST, json.dumps(man, indent=1, sort_keys=True))
    return man


def write_caption_shaped(url: str, counts: np.ndarray | list[int], shard_samples: int) -> None:
    """A training split shaped like a benchmark's captions: ``len(counts)`` one-frame 2x2 clips, video ``i`` with
    ``counts[i]`` captions (npy shards + manifest at ``url``). What the batch-diversity bench and tests read:
    the stream's same-video twin share depends on the caption counts, not on the frames."""
    store = storage.open_store(url)
    frame = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    recs = [ClipRecord(f"v{i}", [f"caption {k} of video {i}" for k in range(c)], frame) for i, c in enumerate(counts)]
    stats = [
        write_shard(store, "train", si, recs[lo : lo + shard_samples], first_sample_index=lo, frame_format="npy")
        for si, lo in enumerate(range(0, len(recs), shard_samples))
    ]
    opts = {"num_frames": 1, "image_size": 2, "fps": 1.0, "frame_format": "npy", "shard_samples": shard_samples}
    man = assemble_manifest("shaped", load_card("msrvtt"), opts, ["train"], stats, {}, protocols={"train": "multi"})
    store.write_text(MANIFEST, json.dumps(man))
