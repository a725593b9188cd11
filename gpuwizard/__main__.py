"""Allow `python -m gpuwizard`."""

from gpuwizard.cli import run

run()
