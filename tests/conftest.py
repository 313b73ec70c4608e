"""Suite-wide plugins: local servers and the browser, started only when a test asks."""

pytest_plugins = ["tests.services.fixtures"]
