"""Text tokenisation with open_clip's tokenizer, truncated or padded to a benchmark's max words (shared by
the model, :mod:`vtrlab.model.tokenizer`, and the data loaders, which take any :data:`Tokenizer`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch

DEFAULT_TOKENIZER_MODEL = "ViT-B-32"

Tokenizer = Callable[[list[str], int], torch.Tensor]  # (texts, max_words) -> int64 [len(texts), max_words]


@functools.lru_cache(maxsize=8)
def get_tokenizer(model_name: str = DEFAULT_TOKENIZER_MODEL):
    """open_clip's tokenizer for `model_name` (every OpenAI-style CLIP ViT shares the same BPE vocabulary,
    which ships inside the open_clip wheel, so this works offline)."""
    import open_clip

    from vtrlab.logs import quiet_root_logger

    with quiet_root_logger():
        return open_clip.get_tokenizer(model_name)


def tokenize(texts: str | Sequence[str], max_words: int, model_name: str = DEFAULT_TOKENIZER_MODEL) -> torch.Tensor:
    """Token ids [len(texts), max_words] (int64): start token, BPE tokens, end token, zero padding.

    Captions longer than `max_words` are truncated with the end token kept in the last position, which is
    what the text tower pools (the EOT token).
    """
    if isinstance(texts, str):
        texts = [texts]
    return get_tokenizer(model_name)(list(texts), context_length=max_words)
