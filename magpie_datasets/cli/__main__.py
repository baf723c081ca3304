"""`python -m magpie_datasets.cli`: the `magpie-datasets` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
