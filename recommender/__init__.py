"""Related-story recommender: import article files, learn from curated related lists, rank."""

__version__ = "0.1.0"
