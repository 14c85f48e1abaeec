"""The composition root: the one place the desk is built and started (the CLI, the runner
and its commands). Nothing imports it."""
