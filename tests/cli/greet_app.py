"""A small application for the CLI tests: a greeting orchestration, an activity, a keyed
state counting greetings, an event, and a startup orchestration."""

from __future__ import annotations

from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    Event,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    SubscriptionContext,
    subscribe,
)

app = App("greetings")


class PersonKey(Affinity):
    person: str


class Greeted(PersonKey, Event):
    text: str


class Greetings(State[PersonKey]):
    count: int = 0

    @subscribe(Greeted)
    def on_greeted(self, ctx: SubscriptionContext, event: Greeted) -> None:
        self.count += 1


class GreetingCount(PersonKey, Read[Greetings, int]):
    def execute(self, ctx: ReadContext[Greetings]) -> int:
        return ctx.state.count


class Compose(Activity[str]):
    name: str
    punctuation: str

    def execute(self, ctx: ActivityContext) -> str:
        return f"Hello, {self.name}{self.punctuation}"


class Greet(Orchestration[str]):
    name: str
    excited: bool = False

    async def execute(self, ctx: OrchestrationContext) -> str:
        if not self.name.strip():
            raise ValueError("name must not be blank")
        text = await ctx.perform(Compose(name=self.name, punctuation="!" if self.excited else "."))
        await ctx.perform(Greeted(person=self.name, text=text))
        ctx.log.info("greeted %s", self.name)
        return text


class GreetTeam(Orchestration[list[str]], startup=True):
    """Runs when the application first starts."""

    async def execute(self, ctx: OrchestrationContext) -> list[str]:
        ctx.log.info("greeting the team")
        return await ctx.all(*(ctx.perform(Greet(name=n)) for n in ("Ada", "Grace")))


app.register(Greet, GreetTeam, Compose, GreetingCount)
