"""Which of our mailboxes a recipient's local part names: the listener's recipient check and
the reading of our own reply and bounce addresses (``abuse+r-TOKEN@``) share this rule."""

from __future__ import annotations

import re

_TAG = re.compile(r"[A-Za-z0-9-]{1,64}")


def mailbox_of(local: str, delimiter: str) -> str | None:
    """The mailbox a recipient's local part names, for the listener's recipient check:
    ``abuse`` for ``abuse``, and (with *delimiter* ``"+"``) for ``abuse+r-TOKEN``; None for a
    tag that is not letters, digits and '-' (no ``%``, ``!`` or other relaying tricks ride in
    a tag). Without a delimiter the local part is the mailbox."""
    if not delimiter or delimiter not in local:
        return local
    mailbox, _, tag = local.partition(delimiter)
    return mailbox if mailbox and _TAG.fullmatch(tag) else None
