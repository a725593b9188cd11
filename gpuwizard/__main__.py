"""Allow `python -m gpuwizard`."""

from gpuwizard.cli import main

raise SystemExit(main())
