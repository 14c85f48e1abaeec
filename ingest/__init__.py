"""Intake: the SMTP listener and the importers. They store a message durably and hand its id on."""
