"""Generated gRPC stubs (committed). Regenerate with ``python -m service.generated.regenerate``."""
