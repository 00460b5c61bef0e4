"""``python -m smsrelay_salesforce.testing``: the org emulator, standalone."""

import sys

from smsrelay_salesforce.testing.org import main

sys.exit(main())
