"""Submission: photos -> images.zip, its validator, and the kit packaged for Kaggle (a wheel in a
dataset, and the notebook)."""
