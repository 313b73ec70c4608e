"""Ping-pong: two singleton states on two partitions exchange events."""
