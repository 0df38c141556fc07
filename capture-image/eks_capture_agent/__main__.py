"""``python -m eks_capture_agent capture|upload ...``: the container entry point."""

from eks_capture_agent.cli import main

raise SystemExit(main())
