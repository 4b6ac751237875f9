"""Scoring: run directory -> scores.parquet + metrics.json (score.py), paired run comparison (compare.py).

stats.py holds the project's only bootstrap; paper.py the paper-compatible M1..M5; validity.py,
identifiability.py and judge.py the additions beside the paper's metrics (docs/metrics.md); embed.py the cached embedder.
"""
