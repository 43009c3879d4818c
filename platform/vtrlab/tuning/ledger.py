"""The ledger: a sweep's or regression's own state, small JSON documents in a store (a local folder, or
`s3://` when the spec names shared `storage`, so a resume on another head finds it).

Documents are written whole and atomically (`vtrlab.storage` commits every write), so a reader sees the
previous version or the new one, never half of one.
"""

from __future__ import annotations

import json
from typing import Any

from vtrlab import storage
from vtrlab.errors import StorageError


class Ledger:
    """JSON documents under `url` (a local path, file:// or s3:// URL), by key (`state.json`, ...)."""

    def __init__(self, url: str):
        self.url = url
        self._store: storage.Store | None = None

    @property
    def store(self) -> storage.Store:
        if self._store is None:
            self._store = storage.open_store(self.url)
        return self._store

    def __getstate__(self) -> dict[str, Any]:  # the Tune scheduler that holds a ledger is pickled
        return {"url": self.url, "_store": None}

    def get(self, key: str) -> dict[str, Any] | None:
        """The document at `key`, or None when there is none."""
        if not self.store.exists(key):
            return None
        text = self.store.read_text(key)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise StorageError(
                f"{self.store.url_for(key)}: not valid JSON ({err}); remove it to start afresh"
            ) from None
        if not isinstance(value, dict):
            raise StorageError(f"{self.store.url_for(key)}: expected a JSON object")
        return value

    def put(self, key: str, document: dict[str, Any]) -> None:
        self.store.write_text(key, json.dumps(document, indent=1, sort_keys=True, default=str))

    def keys(self, prefix: str = "") -> list[str]:
        return self.store.list(prefix)

    def child(self, prefix: str) -> Ledger:
        """The ledger of a part (e.g. one (benchmark, method) pair) under `prefix`."""
        return Ledger(storage.join_url(self.url, prefix))
