"""`python -m gan.compare`: the report over run folders (gan/report/)."""

import sys

from gan.report.compare import __doc__ as __doc__  # noqa: PLC0414  (--help prints it)
from gan.report.compare import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
