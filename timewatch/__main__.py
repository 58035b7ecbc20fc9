"""`python -m timewatch`: the same as the `timewatch` command."""

import sys

from .cli import main

sys.exit(main())
