"""``vtrlab data inspect``: a manifest summary (table or JSON) and a contact sheet PNG of a few samples."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vtrlab import storage
from vtrlab.data.loader import frame_indices
from vtrlab.data.shards import iter_shard, manifest_split, read_manifest, verify_shard
from vtrlab.errors import ConfigError


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


def verify_shards(url: str, split: str | None = None, progress=None) -> int:
    """Read every shard of the dataset at ``url`` (or of ``split``): each one's sha256 and sample count must
    be the manifest's, else a DataError naming the shard's URL. Returns the number of shards checked."""
    url = storage.normalize_url(url)
    man = read_manifest(url)
    names = [split] if split else list(man["splits"])
    n = 0
    for sp in names:
        for sh in manifest_split(man, sp, url)["shards"]:
            verify_shard(storage.join_url(url, sh["path"]), sh)
            n += 1
            if progress:
                progress(sp, sh)
    return n


def contact_sheet(
    url: str, split: str | None = None, samples_per_split: int = 3, frames: int = 8, cell: int = 96
) -> Image.Image:
    """A PNG-able image: for each split (or just ``split``), the first few samples' frames in a row,
    with the video id and first caption underneath. A shard is verified (:func:`verify_shard`: sha256 and
    sample count against the manifest) before anything of it is drawn."""
    if samples_per_split < 1 or frames < 1 or cell < 8:
        raise ConfigError(
            f"--samples {samples_per_split}, frames {frames}, cell {cell}: "
            "expected samples >= 1, frames >= 1, cell >= 8"
        )
    url = storage.normalize_url(url)
    man = read_manifest(url)
    splits = [split] if split else list(man["splits"])
    rows: list[tuple[str, list[np.ndarray], str]] = []
    for sp in splits:
        info = manifest_split(man, sp, url)
        got = 0
        for sh in info["shards"]:
            shard_url = storage.join_url(url, sh["path"])
            verify_shard(shard_url, sh)
            for s in iter_shard(shard_url):
                idx = frame_indices(s, frames)
                caps = [str(c) for c in s.meta.get("captions") or []] or [""]
                more = f"  (+{len(caps) - 1} more)" if len(caps) > 1 else ""
                rows.append((f"[{sp}] {str(s.meta.get('video_id'))[:80]}", list(s.decode(idx)), caps[0] + more))
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
    """Render the contact sheet and write it as PNG to ``path`` (a local path or an object URL), atomically."""
    scheme, _, local = storage.split_url(path)
    if scheme != "s3":
        target = Path(local).expanduser()
        if not local or local.endswith("/") or target.is_dir():
            raise ConfigError(f"--sheet {path}: is a folder; expected the path of a PNG file to write")
        parent = next((q for q in target.parents if q.exists()), None)
        if parent is not None and not parent.is_dir():
            raise ConfigError(f"--sheet {path}: {parent} is a file; expected a folder to write the PNG file in")
    img = contact_sheet(url, **kw)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    if scheme == "s3":
        bucket_url, _, key = path.rpartition("/")
        storage.open_store(bucket_url).write_bytes(key, buf.getvalue())
    else:
        p = Path(local).expanduser()
        storage.LocalStore(p.parent).write_bytes(p.name, buf.getvalue())
    return path
