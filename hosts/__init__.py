"""Hosts that run compiled reactive applications."""
