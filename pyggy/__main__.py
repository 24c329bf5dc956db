"""`python -m pyggy` runs the server, like `pyggy-server`."""

import sys

from pyggy.cli import main

sys.exit(main())
