import sys

from wm_control.cli import main

sys.exit(main())
