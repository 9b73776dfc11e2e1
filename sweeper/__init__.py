"""sweeper: staged Ray Tune sweeps of CLIP backdoor-cleaning trials."""

__version__ = "0.1.0"
