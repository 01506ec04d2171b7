"""``python -m ltxtune.sweeps <sweep dir>``."""

from ltxtune.sweeps.cli import main

main()
