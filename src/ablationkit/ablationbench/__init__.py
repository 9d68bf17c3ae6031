"""AblationBench (arXiv 2507.08038) as a protocol: its scoring rules and its files, both ways.

Nothing here copies the reference's code; its behaviour is reproduced from its documented
formulas and checked against them (tests/test_ablationbench_scoring.py).
"""
