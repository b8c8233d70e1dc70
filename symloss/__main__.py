"""``python -m symloss``: the ``symloss`` command."""

from symloss.cli import main

raise SystemExit(main())
