import sys

from andlib.cli import main

sys.exit(main())
