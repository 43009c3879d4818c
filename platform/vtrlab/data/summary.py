"""``vtrlab data inspect``: a manifest summary (table or JSON) and a contact sheet PNG of a few samples."""

from __future__ import annotations

import io
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vtrlab import storage
from vtrlab.data.loader import frame_indices
from vtrlab.data.shards import iter_shard, read_manifest


def summary(url: str) -> dict:
    """Per split: protocol, samples, videos, captions, skipped (count), skipped_videos (id + reason),
    shards, bytes, bytes_per_clip and the expected counts; plus name, version and options."""
    url = storage.normalize_url(url)
    man = read_manifest(url)
    splits = {}
    for name, s in man["splits"].items():
        splits[name] = {
            "protocol": s["protocol"],
            "samples": s["samples"],
            "videos": s["videos"],
            "captions": s["captions"],
            "skipped": len(s["skipped"]),
            "skipped_videos": s["skipped"],
            "shards": len(s["shards"]),
            "bytes": s.get("bytes", sum(x["bytes"] for x in s["shards"])),
            "bytes_per_clip": (s.get("bytes", 0) // s["samples"]) if s["samples"] else 0,
            "expected": s.get("expected"),
        }
    return {
        "url": url,
        "name": man["name"],
        "version": man["version"],
        "created": man.get("created"),
        "options": man["options"],
        "splits": splits,
    }


def contact_sheet(
    url: str, split: str | None = None, samples_per_split: int = 3, frames: int = 8, cell: int = 96
) -> Image.Image:
    """A PNG-able image: for each split (or just ``split``), the first few samples' frames in a row,
    with the video id and first caption underneath."""
    url = storage.normalize_url(url)
    man = read_manifest(url)
    splits = [split] if split else list(man["splits"])
    rows: list[tuple[str, list[np.ndarray], str]] = []
    for sp in splits:
        info = man["splits"][sp]
        got = 0
        for sh in info["shards"]:
            for s in iter_shard(storage.join_url(url, sh["path"])):
                idx = frame_indices(s, frames)
                caps = s.meta["captions"]
                more = f"  (+{len(caps) - 1} more)" if len(caps) > 1 else ""
                rows.append((f"[{sp}] {s.meta['video_id']}", list(s.decode(idx)), caps[0] + more))
                got += 1
                if got >= samples_per_split:
                    break
            if got >= samples_per_split:
                break
    font = ImageFont.load_default()
    text_h = 40
    width = cell * frames
    sheet = Image.new("RGB", (max(width, 320), max(1, len(rows)) * (cell + text_h) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (title, frs, cap) in enumerate(rows):
        y = r * (cell + text_h)
        for c, fr in enumerate(frs):
            im = Image.fromarray(fr).resize(
                (cell, cell), Image.Resampling.NEAREST if fr.shape[0] < cell else Image.Resampling.BILINEAR
            )
            sheet.paste(im, (c * cell, y))
        lines = [title, *textwrap.wrap(cap, width=max(20, width // 6))[:2]]
        for k, line in enumerate(lines):
            draw.text((2, y + cell + 1 + 12 * k), line, fill=(0, 0, 0), font=font)
    return sheet


def write_contact_sheet(url: str, path: str, **kw) -> str:
    """Render the contact sheet and write it as PNG to ``path`` (a local path or an object URL)."""
    img = contact_sheet(url, **kw)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    scheme, _, _ = storage.split_url(path)
    if scheme == "s3":
        bucket_url, _, key = path.rpartition("/")
        storage.open_store(bucket_url).write_bytes(key, buf.getvalue())
    else:
        import pathlib

        p = pathlib.Path(storage.split_url(path)[2])
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(buf.getvalue())
    return path
