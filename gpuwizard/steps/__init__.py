"""steps/: the domain. Each step knows one part of a working NVIDIA + Docker setup."""
