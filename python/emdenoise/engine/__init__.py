"""ONNX Runtime sessions, tiling and stitching, batching, model cards: no gRPC here."""

import os

# Importing onnxruntime otherwise writes telemetry ids into $TMPDIR and ~/.cache, which
# users of the Fiji commands see as stray files.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from emdenoise.engine.cards import ModelCard, load_card
from emdenoise.engine.engine import Engine
from emdenoise.engine.repository import ModelRepository, bundled_models_dir, user_models_dir

__all__ = ["Engine", "ModelCard", "ModelRepository", "bundled_models_dir", "load_card", "user_models_dir"]
