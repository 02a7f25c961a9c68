"""The model repository (one folder per model: card.json + ONNX graphs), installed as emdenoise._bundled_models."""
