"""What specialists do: review decisions, case actions, and the read models the web desk and
the CLI share."""
