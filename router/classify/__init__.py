"""Triage classification: what kind of task a request is and how hard, decided locally or by Claude Haiku."""
