"""The web desk: login and accounts, the review queue, cases, the dashboard, the JSON API,
the customers' self-service pages, /healthz and /metrics (app.py builds the Starlette app)."""
