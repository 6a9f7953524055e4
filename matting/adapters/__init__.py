"""Method adapters (one small module per method family): importing this package registers every method (cheaply: heavy imports are lazy)."""
from . import classical  # noqa: F401
