"""vidrec: the nightly recommendation and analytics pipeline of a video site (Spark, Delta Lake, PyTorch)."""

__version__ = "0.1.0"
