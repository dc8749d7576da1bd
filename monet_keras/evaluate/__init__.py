"""Evaluation: feature extractors, FID / KID / MiFID as Kaggle computes them, and the memorization report."""
