"""ecliptica-bench: does a model switch behaviour when only the alignment instruction changes?"""

__version__ = "0.1.0"
DATASET_VERSION = "1.1.0"
