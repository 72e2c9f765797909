"""`python -m mx_dcn ...` is the `mx-dcn` command line."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
