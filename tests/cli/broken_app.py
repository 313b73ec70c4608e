"""A module whose application definition is invalid: importing it fails."""

from reactive import Affinity, App, Orchestration, OrchestrationContext

app = App("broken")


class TwoKeys(Affinity):  # a partitioned affinity must have exactly one key field
    first: str
    second: str


class Touch(TwoKeys, Orchestration[None]):
    async def execute(self, ctx: OrchestrationContext) -> None:
        return None


app.register(Touch)
