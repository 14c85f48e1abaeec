"""abuse-desk: an ISP's abuse@ desk. See README.md for the whole picture."""

__version__ = "0.1.0"
