"""ONNX Runtime sessions, tiling and stitching, batching, model cards: no gRPC here."""

from emdenoise.engine.cards import ModelCard, load_card
from emdenoise.engine.engine import Engine
from emdenoise.engine.repository import ModelRepository, bundled_models_dir, user_models_dir

__all__ = ["Engine", "ModelCard", "ModelRepository", "bundled_models_dir", "load_card", "user_models_dir"]
