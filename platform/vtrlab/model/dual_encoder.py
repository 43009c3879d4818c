"""The video-text dual encoder: a frozen open_clip CLIP, meanP video pooling, adapters injected by a method."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrlab.errors import ConfigError, InputError
from vtrlab.model.adapter_config import EvaluationSettings
from vtrlab.model.backbone import BackboneInfo
from vtrlab.model.context import AdapterContext

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps its learned temperature at 0.01


def masked_mean_pool(
    frame_emb: torch.Tensor, frame_mask: torch.Tensor, frame_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """meanP: L2-normalise each frame, average over the valid frames, L2-normalise again ([B, F, D] -> [B, D]).

    `frame_weights` [B, F] (non-negative) make it a weighted mean: after the per-frame normalisation, a
    frame's weight is the only way a per-frame scalar can still change the video embedding.
    """
    frames = F.normalize(frame_emb.float(), dim=-1)
    weights = frame_mask.to(frames.dtype)
    if frame_weights is not None:
        weights = weights * frame_weights.to(frames.dtype)
    weights = weights.unsqueeze(-1)
    video = (frames * weights).sum(1) / weights.sum(1).clamp(min=1e-12)
    return F.normalize(video, dim=-1)


class MeanPooling(nn.Module):
    """CLIP4Clip's parameter-free meanP pooling of per-frame CLS embeddings (the default video head)."""

    needs_patch_tokens = False
    text_conditioned = False

    def forward(
        self,
        frame_emb: torch.Tensor,
        frame_mask: torch.Tensor,
        patch_emb: torch.Tensor | None = None,
        text_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return masked_mean_pool(frame_emb, frame_mask)


class VideoTextDualEncoder(nn.Module):
    """A frozen open_clip CLIP used as a video-text dual encoder (methods.md section 1).

    A method (see `vtrlab.model.methods`) injects its modules into the backbone's blocks or replaces the
    video head; `method` and `knobs` record which. Embeddings are L2-normalised float32.
    """

    def __init__(self, clip: nn.Module, backbone: BackboneInfo):
        super().__init__()
        self.clip = clip
        self.backbone = backbone
        self.context = AdapterContext()
        self.video_head: nn.Module = MeanPooling()
        self.cmt: nn.Module | None = None  # MV-Adapter's cross-modality tying, when enabled
        self.method = "zero-shot"
        self.knobs: dict[str, Any] = {}
        self.evaluation: EvaluationSettings | None = None  # what a loaded artifact was evaluated with
        self._check_supported()
        mean = getattr(clip.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        std = getattr(clip.visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)

    # ---- backbone geometry -------------------------------------------------------------------------
    @property
    def text_tower(self) -> nn.Module:
        """The module holding token_embedding, positional_embedding, transformer, ln_final, text_projection."""
        return getattr(self.clip, "text", self.clip)

    @property
    def visual_blocks(self) -> nn.ModuleList:
        return self.clip.visual.transformer.resblocks

    @property
    def text_blocks(self) -> nn.ModuleList:
        return self.text_tower.transformer.resblocks

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.clip.visual.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    @property
    def context_length(self) -> int:
        return int(self.text_tower.positional_embedding.shape[0])

    @property
    def embed_dim(self) -> int:
        return int(self.clip.visual.proj.shape[1])

    def _check_supported(self) -> None:
        visual, text = self.clip.visual, self.text_tower
        name = self.backbone.name
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
            raise ConfigError(f"backbone {name!r}: only CLS-token ViTs are supported (no attention pooling)")
        if getattr(visual, "proj", None) is None:
            raise ConfigError(f"backbone {name!r}: the visual tower has no projection")
        if not hasattr(text, "token_embedding") or getattr(text, "cls_emb", None) is not None:
            raise ConfigError(f"backbone {name!r}: only open_clip's own causal text transformer is supported")
        if getattr(self.clip, "text_pool_type", getattr(text, "pool_type", "argmax")) != "argmax":
            raise ConfigError(f"backbone {name!r}: only EOT-token (argmax) text pooling is supported")

    # ---- the frozen logit scale --------------------------------------------------------------------
    def logit_scale(self) -> torch.Tensor:
        """exp of CLIP's (frozen) logit scale, clamped at 100 (temperature 0.01)."""
        return self.clip.logit_scale.detach().clamp(max=MAX_LOGIT_SCALE).exp()

    # ---- input checks ------------------------------------------------------------------------------
    def _check_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        height, width = self.image_size
        if not isinstance(frames, torch.Tensor) or frames.dim() != 5 or frames.shape[2] != 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise InputError(f"frames must be a tensor [B, F, 3, H, W]; got {shape}")
        if tuple(frames.shape[3:]) != (height, width):
            raise InputError(
                f"frames are {tuple(frames.shape[3:])} pixels but backbone {self.backbone.name!r} "
                f"expects {(height, width)}; resize and centre-crop to the model's input size"
            )
        if frames.dtype != torch.uint8 and not frames.is_floating_point():
            raise InputError(f"frames must be uint8 (0-255 RGB) or normalised float; got {frames.dtype}")
        if not isinstance(frame_mask, torch.Tensor) or tuple(frame_mask.shape) != tuple(frames.shape[:2]):
            shape = tuple(frame_mask.shape) if isinstance(frame_mask, torch.Tensor) else frame_mask
            raise InputError(f"frame_mask must be [B, F] = {tuple(frames.shape[:2])}; got {shape}")
        frame_mask = frame_mask.to(device=frames.device, dtype=torch.bool)
        has_frames = frame_mask.any(dim=1)
        if not bool(has_frames.all()):  # one host sync; the positions are only looked up on error
            empty = (~has_frames).nonzero().flatten().tolist()
            raise InputError(f"videos at batch positions {empty} have no valid frame in frame_mask")
        return frame_mask

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if (
            not isinstance(tokens, torch.Tensor)
            or tokens.dim() != 2
            or tokens.dtype
            not in (
                torch.int64,
                torch.int32,
            )
        ):
            desc = f"{tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, torch.Tensor) else tokens
            raise InputError(f"tokens must be an integer tensor [N, L] from vtrlab's tokenizer; got {desc}")
        if tokens.shape[1] > self.context_length:
            raise InputError(
                f"tokens have {tokens.shape[1]} positions; backbone {self.backbone.name!r} "
                f"takes at most {self.context_length}"
            )

    # ---- forward passes ----------------------------------------------------------------------------
    @contextmanager
    def _adapter_context(self, frame_mask: torch.Tensor | None = None) -> Iterator[None]:
        self.context.frame_mask = frame_mask
        if self.cmt is not None:
            self.context.down_scales = self.cmt()
        try:
            yield
        finally:
            self.context.clear()

    def _normalise_pixels(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dtype == torch.uint8:
            dtype = self.pixel_mean.dtype
            return (frames.to(dtype) - self.pixel_mean) / self.pixel_std
        return frames

    def frame_features(
        self, frames: torch.Tensor, frame_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Per-frame projected CLS embeddings [B, F, D], projected patch tokens [B, F, P, D] when the video
        head needs them (else None), and the checked frame mask."""
        frame_mask = self._check_video(frames, frame_mask)
        batch, num_frames = frames.shape[:2]
        visual = self.clip.visual
        images = self._normalise_pixels(frames.flatten(0, 1))
        with self._adapter_context(frame_mask):
            tokens = visual._embeds(images)
            tokens = visual.transformer(tokens)
        pooled, patches = visual._pool(tokens)
        frame_emb = (pooled @ visual.proj).view(batch, num_frames, -1)
        patch_emb = None
        if self.video_head.needs_patch_tokens:
            patch_emb = (patches @ visual.proj).view(batch, num_frames, patches.shape[1], -1)
        return frame_emb, patch_emb, frame_mask

    def encode_video(
        self, frames: torch.Tensor, frame_mask: torch.Tensor, text_emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Video embeddings [B, D] (L2-normalised) from frames [B, F, 3, H, W] (uint8 RGB or CLIP-normalised
        float) and frame_mask [B, F] (True = real frame; padded frames are excluded).

        A text-conditioned video head (RAP with selection='text-conditioned') needs `text_emb` [T, D] and
        returns one video embedding per text: [T, B, D].
        """
        frame_emb, patch_emb, frame_mask = self.frame_features(frames, frame_mask)
        return self.pool_video(frame_emb, frame_mask, patch_emb, text_emb)

    def pool_video(
        self,
        frame_emb: torch.Tensor,
        frame_mask: torch.Tensor,
        patch_emb: torch.Tensor | None = None,
        text_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply the video head to cached frame features (see `frame_features`)."""
        if self.video_head.text_conditioned and text_emb is None:
            raise InputError(f"method {self.method!r} selects patches by the query text: pass text_emb to encode_video")
        return self.video_head(frame_emb, frame_mask, patch_emb=patch_emb, text_emb=text_emb).float()

    def score_video_features(
        self,
        text_emb: torch.Tensor,
        frame_emb: torch.Tensor,
        frame_mask: torch.Tensor,
        patch_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Similarities [T, B] of texts [T, D] to videos given as cached frame features (`frame_features`): a
        text-conditioned head scores every pair in blocks of bounded memory (methods.md section 3.3)."""
        text_similarity = getattr(self.video_head, "text_similarity", None)
        if self.video_head.text_conditioned and text_similarity is not None:
            return text_similarity(frame_emb, frame_mask, patch_emb, text_emb)
        return self.similarity(text_emb, self.pool_video(frame_emb, frame_mask, patch_emb, text_emb))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Text embeddings [N, D] (L2-normalised): the projected EOT token of open_clip's text tower.

        Sequences may be shorter than the backbone's context (e.g. 32 words): positional embeddings and the
        causal mask are cut to the token length, as CLIP4Clip does.
        """
        self._check_tokens(tokens)
        text = self.text_tower
        length = tokens.shape[1]
        cast_dtype = text.transformer.get_cast_dtype()
        x = text.token_embedding(tokens).to(cast_dtype) + text.positional_embedding[:length].to(cast_dtype)
        attn_mask = getattr(text, "attn_mask", None)
        attn_mask = attn_mask[:length, :length] if attn_mask is not None else None
        with self._adapter_context():
            x = text.transformer(x, attn_mask=attn_mask)
        x = text.ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        projection = text.text_projection
        pooled = projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection
        return F.normalize(pooled.float(), dim=-1)

    def similarity(self, text_emb: torch.Tensor, video_emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarities [T, B] between text [T, D] and video embeddings [B, D] or [T, B, D]."""
        if video_emb.dim() == 3:
            return torch.einsum("td,tbd->tb", text_emb, video_emb)
        return text_emb @ video_emb.T

    def forward(
        self, frames: torch.Tensor, frame_mask: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(text embeddings [N, D], video embeddings [B, D] or [N, B, D] for text-conditioned heads)."""
        text_emb = self.encode_text(tokens)
        text_query = text_emb if self.video_head.text_conditioned else None
        return text_emb, self.encode_video(frames, frame_mask, text_emb=text_query)
