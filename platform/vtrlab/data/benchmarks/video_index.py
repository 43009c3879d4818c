"""Find an item's video file: the videos folder is walked once, and an item's file is looked up by its
``file_hint`` (relative path, then file name), then by stem with any video extension, with and without
ActivityNet's ``v_`` prefix. A file that is a link to somewhere outside the folder is refused when an item
resolves to it (a DataError naming the link and its target) unless ``allow_links``: a videos folder of links
into a shared store is then read as it is."""

from __future__ import annotations

import os
from pathlib import Path

from vtrlab.data.benchmarks.common import VideoItem, video_id_value
from vtrlab.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".3gp", ".flv", ".ogv")


class VideoIndex:
    """The video files under a folder, looked up by file name or stem (walks the folder once)."""

    def __init__(self, root: str | os.PathLike, allow_links: bool = False):
        self.root = Path(root).expanduser().resolve()  # absolute: Ray workers may run in another cwd
        self.allow_links = allow_links
        if not self.root.is_dir():
            raise DataError(f"{self.root}: videos folder not found (--videos)")
        self.by_rel: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        self.by_stem: dict[str, str] = {}
        for dirpath, _dirs, files in os.walk(self.root):
            for fn in sorted(files):
                full = os.path.join(dirpath, fn)
                if not os.path.isfile(full):  # a FIFO, socket or device would block or never end
                    continue
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                self.by_rel[rel] = full
                self.by_name.setdefault(fn, full)
                stem, ext = os.path.splitext(fn)
                if ext.lower() in VIDEO_EXTENSIONS:
                    self.by_stem.setdefault(stem, full)

    def find(self, item: VideoItem) -> str | None:
        """The path of ``item``'s video file, or None. A video id or file name that is not a relative path
        inside the folder (``..``, absolute) is a DataError naming it: ids are never matched by their last part;
        so is a file that links out of the folder, unless ``allow_links``."""
        path = self._find(item)
        if path is not None and not self.allow_links:
            target = Path(path).resolve()
            if not target.is_relative_to(self.root):
                raise DataError(
                    f"{path}: video {item.video_id!r} links to {target}, outside the videos folder {self.root} "
                    "(--allow-links reads such links)"
                )
        return path

    def _find(self, item: VideoItem) -> str | None:
        for value in (item.video_id, item.file_hint):
            if value is not None:
                video_id_value(value, f"{self.root}: video {item.video_id!r}")
        cands = []
        if item.file_hint:
            cands.append(item.file_hint)
        cands.append(item.video_id)
        for c in cands:
            if c in self.by_rel:
                return self.by_rel[c]
            name = c.rsplit("/", 1)[-1]
            if name in self.by_name and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                return self.by_name[name]
        stems = []
        for c in cands:
            name = c.rsplit("/", 1)[-1]
            stems.append(name)
            base, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                stems.append(base)
        for s in list(stems):
            if s.startswith("v_"):
                stems.append(s[2:])
        for s in stems:
            if s in self.by_stem:
                return self.by_stem[s]
        return None
