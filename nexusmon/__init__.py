"""nexusmon: governed mission operations runner."""

__version__ = "0.1.0"
