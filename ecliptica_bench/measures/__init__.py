"""Measures: the statistics (clustered bootstrap, stats.py) and the metric building blocks (markers, word
counts, M1 fidelity/shift, two-condition rate comparisons, AQI; paper.py) that suites compose into their
paper metrics. Below suites in the layers: it knows no suite and no instruction type."""
