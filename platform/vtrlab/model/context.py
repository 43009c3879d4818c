"""Per-forward state that adapters inside the frozen towers read: the video's frame layout and CMT scales.

The backbone's blocks see frames as a flat batch [B*F, N, D]; temporal adapters need B, F and the frame
mask to undo that. The dual encoder fills one `AdapterContext` before each tower's forward pass and clears
it afterwards; adapters hold a reference to the same object (it is not an nn.Module, so it adds no
parameters and no state-dict keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AdapterContext:
    """Mutable state shared by the encoder and its adapters for the duration of one forward pass."""

    frame_mask: torch.Tensor | None = None  # [B, F] bool, True for real frames
    down_scales: dict[str, torch.Tensor] = field(default_factory=dict)  # CMT: "visual.10" -> scale vector

    @property
    def num_frames(self) -> int:
        if self.frame_mask is None:
            raise RuntimeError("a video adapter ran outside encode_video: no frame layout is set")
        return self.frame_mask.shape[1]

    def clear(self) -> None:
        self.frame_mask = None
        self.down_scales = {}
