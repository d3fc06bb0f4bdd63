"""`python -m reidkit ...`, which is also what `torchrun --nproc_per_node N -m reidkit train ...` runs."""
import sys

from reidkit.cli import main

sys.exit(main())
