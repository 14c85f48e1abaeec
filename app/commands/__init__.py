"""The CLI's command groups (``abuse-desk customers``, ``cases``/``fees``/``timeline``,
``users``); ``app/cli.py`` adds and runs them."""
