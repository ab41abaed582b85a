"""bench: what frozen visual encoders know about image processing and acquisition."""

__version__ = "0.1.0"
