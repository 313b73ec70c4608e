"""A module defining two applications: the CLI must be told which one to use."""

from reactive import App

first = App("first")
second = App("second")
