"""gRPC service on top of the engine."""
