"""The CLI's command groups (``abuse-desk customers``, ``cases``/``fees``/``timeline``,
``users``); ``abuse_desk/cli.py`` adds and runs them."""
