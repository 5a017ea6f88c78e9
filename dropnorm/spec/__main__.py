"""python -m dropnorm.spec [--markdown]: list the clauses, or write spec/CLAUSES.md."""
import sys

from dropnorm.spec.document import main

sys.exit(main())
