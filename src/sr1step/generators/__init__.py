"""Generators: the SR pipelines `sr1step upscale` runs, behind one inference contract (``contract.py``)."""
