import sys

from maxrf.cli import main

sys.exit(main())
