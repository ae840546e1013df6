"""`python -m diffedu.distill METHOD` (see diffedu/distill/train.py)."""
import sys

from .train import main

sys.exit(main())
