"""Intake: the SMTP listener and `abuse-desk import`. They store a message durably (the
group-commit store) before they accept it, and hand its id on to the workers."""
