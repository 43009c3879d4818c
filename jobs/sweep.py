"""Ray Job entrypoint: `ray job submit --working-dir . -- python jobs/sweep.py sweeps/paper.yaml`.

Runs on the cluster's head (or wherever Ray places the job driver); it connects to the cluster the job
belongs to, so the sweep's trials spread over the cluster's GPU workers.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from vtrlab.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "sweep", *sys.argv[1:]]
    main()
