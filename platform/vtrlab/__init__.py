"""vtrlab: parameter-efficient video-text retrieval on a frozen open_clip CLIP, orchestrated with Ray and MLflow."""

from __future__ import annotations

__version__ = "0.1.0"
