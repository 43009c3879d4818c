"""The model's text front end: open_clip's tokenizer (implemented in :mod:`vtrlab.text`, which the data
loaders use too without importing the model package)."""

from vtrlab.text import DEFAULT_TOKENIZER_MODEL, Tokenizer, get_tokenizer, tokenize

__all__ = ["DEFAULT_TOKENIZER_MODEL", "Tokenizer", "get_tokenizer", "tokenize"]
