"""``python -m serving``: the same as the ``serve`` entry point."""

from serving.cli import main

main()
