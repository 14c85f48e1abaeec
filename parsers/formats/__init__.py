"""The report formats, one file each. Every module here is a format the registry takes
(``parsers/registry.py``): it declares its :class:`~abuse_desk.parsers.base.Format` facts and
gives its parsers with ``parsers(message_id_domain)``. README, "Adding a format"."""
