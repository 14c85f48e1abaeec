"""abuse-desk: an ISP's abuse@ desk. See README.md for the whole picture.

Installed, every part of the desk lives under this package. In the source tree each part is a
top-level folder, in the order a message goes through them (README, "How it fits together"):
core/ (``abuse_desk.core``), ingest/, parsers/, classifier/, workflow/, casework/, web/, and
app/, the composition root (the CLI, the runner and its commands) that nothing imports.
pyproject.toml maps each folder to its name under ``abuse_desk``; inside the package the parts
import each other relatively (``from ..core.config import Config``), so a path in the tree and
a name in the installed package say the same thing.
"""

from abuse_desk.core import __version__

__all__ = ["__version__"]
