"""gpuwizard: make Docker containers use this host's NVIDIA GPUs, reversibly."""

__version__ = "0.1.0"
