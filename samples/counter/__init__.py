"""Counters: a keyed state changed by updates, and one changed by events."""
