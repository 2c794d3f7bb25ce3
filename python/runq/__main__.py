"""``python -m runq worker module:app ...``"""
import sys

from .cli import main

sys.exit(main())
