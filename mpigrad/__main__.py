"""`python -m mpigrad ...` is the same as the `mpigrad` console script."""

from mpigrad.cli import main

raise SystemExit(main())
