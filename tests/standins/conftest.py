from tests.standins.eventhubs.fixtures import eventhubs as eventhubs
