"""Methods: named SR methods (how to load a generator, and how to train it). See registry.py."""
