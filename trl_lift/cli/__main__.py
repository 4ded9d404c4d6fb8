"""``python -m trl_lift.cli``: the ``trl-lift`` command (also ``accelerate launch -m trl_lift.cli sft ...``)."""

import sys

from .main import main

sys.exit(main())
