"""Content in: a configured source becomes items."""

import sys

# httpx's package imports its command-line client (`httpx.main`: rich, pygments, click,
# 100 ms of CPU, a sixth of a cycle of 300 unchanged feeds) whenever those are installed,
# which they are here for other reasons. Nothing here uses it: a None in sys.modules makes
# that one import fail, which httpx expects (`httpx.main` then says how to install it).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
