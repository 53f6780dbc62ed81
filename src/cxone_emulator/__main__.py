"""`python -m cxone_emulator` is the same as the `cxone-emulator` console script."""

from cxone_emulator.cli import main

raise SystemExit(main())
