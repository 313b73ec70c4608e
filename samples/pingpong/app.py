"""Ping-pong between a client state on partition 0 and a server state on partition 1: each
event handler counts the event and forks the reply, until the client has seen 100 pongs."""

from __future__ import annotations

from reactive import (
    App,
    Event,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    SingletonAffinity,
    State,
    SubscriptionContext,
    subscribe,
)

app = App("pingpong")

ROUNDS = 100


class ClientAff(SingletonAffinity, partition=0):
    pass


class ServerAff(SingletonAffinity, partition=1):
    pass


class Ping(ServerAff, Event):
    """Sent to the server."""


class Pong(ClientAff, Event):
    """Sent back to the client."""


@app.register
class ServerState(State[ServerAff]):
    pings: int = 0

    @subscribe(Ping)
    def on_ping(self, ctx: SubscriptionContext, event: Ping) -> None:
        self.pings += 1
        ctx.fork(Pong())


@app.register
class ClientState(State[ClientAff]):
    pongs: int = 0

    @subscribe(Pong)
    def on_pong(self, ctx: SubscriptionContext, event: Pong) -> None:
        self.pongs += 1
        if self.pongs < ROUNDS:
            ctx.fork(Ping())


@app.register
class ReadPings(ServerAff, Read[ServerState, int]):
    def execute(self, ctx: ReadContext[ServerState]) -> int:
        return ctx.state.pings


@app.register
class ReadPongs(ClientAff, Read[ClientState, int]):
    def execute(self, ctx: ReadContext[ClientState]) -> int:
        return ctx.state.pongs


@app.register
class StartPingPong(Orchestration[None], startup=True):
    async def execute(self, ctx: OrchestrationContext) -> None:
        ctx.fork(Ping())
