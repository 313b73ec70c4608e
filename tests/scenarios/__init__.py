"""A port of the original system's local test suite ("LocalTests") to this runtime.

The modules define one application (see :func:`tests.scenarios.suite.build_app`): counters,
accounts, places and the test orchestrations that exercise them. Each test orchestration
checks its own invariants while it runs (raising :class:`~.common.TestFailure`) and returns a
dict of what it observed, so that pytest can assert on the values and the fault suite can
compare whole runs.
"""
