"""`python -m datman_flow.cli ...`, the same as the `datman-flow` command."""

import sys

from datman_flow.cli import main

sys.exit(main())
