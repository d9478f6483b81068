"""``python -m privchat.devtools.fake_cloud --port N``."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
