"""emdenoise.fiji."""
