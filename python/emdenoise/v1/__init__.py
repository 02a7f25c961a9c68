"""Generated gRPC stubs of the emdenoise.v1 contract (source of truth: proto/emdenoise/v1/)."""
