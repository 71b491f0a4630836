import sys

from rtsearch.cli import main

sys.exit(main())
