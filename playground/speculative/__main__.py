import sys

from playground.speculative.cli import main

sys.exit(main())
