"""descentlab: a Lightning + Hydra template for the fundamentals of training neural networks."""

__version__ = "0.1.0"
