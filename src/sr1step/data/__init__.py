"""Training data: degradations and datasets."""
