"""``python -m cellclf_utils.cli``: the ``cellclf`` command where its script is not on the PATH."""
import sys

from . import main

sys.exit(main())
