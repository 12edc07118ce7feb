"""Where the real datasets live: ``../shared/data`` beside the checkout (see its README)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
