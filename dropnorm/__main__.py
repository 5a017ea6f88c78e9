"""python -m dropnorm: the `dropnorm` command."""
import sys

from dropnorm.run.cli import main

sys.exit(main())
