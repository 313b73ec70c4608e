from __future__ import annotations

import pytest

from hosts.emulator import Emulator, Faults
from reactive import App
from samples import startup_result
from samples.hello.app import Hello, HelloConfig, HelloStartup, app

CALLED = "Hello World was called"


def run_startup(
    repetitions: int, seed: int = 0, faults: Faults | None = None
) -> tuple[Emulator, list[str]]:
    app.configure(HelloConfig(repetitions=repetitions))
    em = Emulator(app, partitions=4, seed=seed, faults=faults)
    return em, startup_result(em, HelloStartup)


def test_startup_says_hello_n_times() -> None:
    em, results = run_startup(12)
    assert results == ["Hello World"] * 12
    assert em.app_lines().count(CALLED) == 12


def test_reconfiguring_the_app_takes_effect() -> None:
    for n in (3, 9):
        em, results = run_startup(n)
        assert results == ["Hello World"] * n
        assert em.app_lines().count(CALLED) == n


def test_default_repetitions_without_config() -> None:
    bare = App("hello-unconfigured")
    bare.register(Hello, HelloStartup)
    em = Emulator(bare, partitions=4)
    assert startup_result(em, HelloStartup) == ["Hello World"] * 5
    assert em.app_lines().count(CALLED) == 5


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_each_line_logged_once_under_faults(seed: int) -> None:
    faults = Faults(roundtrip=True, restore_probability=0.3, duplicate_probability=0.2, seed=seed)
    em, results = run_startup(30, seed=seed, faults=faults)
    assert results == ["Hello World"] * 30
    assert em.app_lines().count(CALLED) == 30
    assert em.restores > 0  # the faults really happened


def test_client_perform() -> None:
    em = Emulator(app, partitions=4)
    em.run()
    before = em.app_lines().count(CALLED)
    assert em.client().perform(Hello()) == "Hello World"
    assert em.app_lines().count(CALLED) == before + 1
