"""Diffusion processes and samplers."""
