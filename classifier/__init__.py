"""Classifier: category and type for each report, the customer behind it, and review routing."""
