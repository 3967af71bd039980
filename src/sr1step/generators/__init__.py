"""Generators: the networks `sr1step upscale` runs, behind one inference contract (base.py)."""

from .base import Generator

__all__ = ["Generator"]
