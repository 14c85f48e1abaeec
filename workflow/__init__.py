"""Workflow: examining and storing each message (examine.py, pipeline.py, the examiner
processes), the actors and the scheduler, and the mitigation timeline: cases, deadlines,
notices, their delivery and the provisioning hook."""
