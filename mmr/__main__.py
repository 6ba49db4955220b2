"""`python -m mmr ...` is the same as the `mmr` command."""

from mmr.cli import main

main()
