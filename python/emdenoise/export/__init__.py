"""emdenoise.export."""
