"""Workflow: the actors that process stored messages and the scheduler that moves work on."""
