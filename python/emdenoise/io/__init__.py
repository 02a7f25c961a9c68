"""emdenoise.io."""
