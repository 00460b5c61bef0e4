"""``python -m smsrelay`` is the ``smsrelay`` command."""

from smsrelay.cli import main

raise SystemExit(main())
