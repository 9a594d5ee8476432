"""Run the generator's command line."""

from __future__ import annotations

from sandbox.datagen.cli import main

raise SystemExit(main())
