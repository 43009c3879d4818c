"""The MLflow pyfunc of a vtrlab adapter, logged as code (MLflow stores this file and the adapter's files;
no Python object is pickled), so the standard `mlflow.pyfunc.load_model("models:/NAME@champion")` works.

`predict` takes a DataFrame with a `text` column (captions) or a `video` column (video file paths) and
returns their L2-normalised embeddings, float32 [rows, D]: texts are tokenised to the adapter's word count,
videos decoded at 1 fps, sampled to its frame count and cropped to its image size, as vtrlab's loader does.
The backbone is the one the adapter records (verified by fingerprint); on another machine give its weights
with `model_config={"weights": "/path/to/weights.safetensors"}` when loading.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd


class AdapterEmbeddings(mlflow.pyfunc.PythonModel):
    """Texts or videos in, embeddings out, through a vtrlab adapter on its frozen backbone."""

    def load_context(self, context) -> None:
        from vtrlab.model.adapter_config import evaluation_settings
        from vtrlab.model.artifacts import load_adapter

        config = context.model_config or {}
        directory = context.artifacts["adapter"]
        self.encoder = load_adapter(directory, weights=config.get("weights")).eval()
        settings = evaluation_settings(directory)  # the frames and words the adapter was evaluated with
        self.num_frames = int(config.get("num_frames") or settings.num_frames)
        self.max_words = int(config.get("max_words") or settings.max_words)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        columns = set(getattr(model_input, "columns", []))
        with torch.no_grad():
            if "text" in columns and model_input["text"].notna().all():
                from vtrlab.model.tokenizer import tokenize

                tokens = tokenize([str(t) for t in model_input["text"]], max_words=self.max_words)
                return self.encoder.encode_text(tokens).numpy().astype(np.float32)
            if "video" in columns and model_input["video"].notna().all():
                return np.concatenate([self._video(str(path)) for path in model_input["video"]]).astype(np.float32)
        raise ValueError("expected a DataFrame with a 'text' column (captions) or a 'video' column (video paths)")

    def _video(self, path: str) -> np.ndarray:
        import torch

        from vtrlab.data.video import decode_video

        size = self.encoder.image_size[0]
        frames = decode_video(path, max_frames=self.num_frames, size=size)  # CLIP4Clip's frames, as evaluation
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).unsqueeze(0)
        mask = torch.ones(clip.shape[:2], dtype=torch.bool)
        return self.encoder.encode_video(clip, mask).numpy()


mlflow.models.set_model(AdapterEmbeddings())
