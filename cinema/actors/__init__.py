"""Actors: long-lived tasks with mailboxes that own the service's resources (see base.py)."""
