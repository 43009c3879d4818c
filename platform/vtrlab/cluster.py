"""Connecting to Ray: the cluster at `--address` or RAY_ADDRESS, else a local Ray with the dashboard."""

from __future__ import annotations

import os

from vtrlab.errors import ConfigError


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Initialise Ray once per process; returns a description of where it runs.

    A local Ray starts with the dashboard, which Ray Train inside Ray Tune needs (stack-notes). Token
    authentication is off unless RAY_AUTH_MODE says otherwise, consistently for clients and the cluster.
    """
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        # A second Ray on one machine breaks Ray Train's auto-detection of "its" cluster (its placement
        # group cleaner raises "Found multiple active Ray instances" and the next trial waits forever):
        # join a Ray already running here instead of starting another.
        from ray._private.services import find_gcs_addresses

        running = sorted(find_gcs_addresses())
        if len(running) > 1:
            raise ConfigError(
                f"several Ray instances run on this machine ({', '.join(running)}); pass --address or set "
                "RAY_ADDRESS to choose one, or stop them with `ray stop`"
            )
        address = running[0] if running else None
    try:
        if address:
            ray.init(address=address, logging_level="WARNING")
            return f"Ray cluster at {address}"
        ray.init(num_cpus=num_cpus, include_dashboard=True, logging_level="WARNING")
        return "local Ray (started here)"
    except (ConnectionError, TimeoutError, RuntimeError) as err:
        where = address or "a new local instance"
        raise ConfigError(f"cannot connect to Ray at {where}: {err}") from None
