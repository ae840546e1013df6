"""`python -m diffedu.train ...`: the training command line (see diffedu/train/cli.py)."""
from .cli import main

main()
