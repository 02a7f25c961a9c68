"""One module per CLI verb of the walking skeleton (denoise, models, serve, demo)."""
