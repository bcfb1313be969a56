"""`python -m jaxrl_modules.cli` runs the command line."""

import sys

from jaxrl_modules.cli import main

sys.exit(main())
