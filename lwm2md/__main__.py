"""``python -m lwm2md`` runs the command-line interface."""

from lwm2md.cli import main

raise SystemExit(main())
