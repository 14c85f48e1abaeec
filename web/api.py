"""(being written)"""

from __future__ import annotations

from starlette.routing import Route

from web.base import Web


def routes(web: Web) -> list[Route]:
    return []
