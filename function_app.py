"""The Azure Functions entry point: binds an app to the Azure host.

Settings come from app settings (environment variables); see docs/azure.md. To deploy
another app, import it here instead of samples.hello.
"""

from hosts.azure.functions import build_function_app
from samples.hello.app import app as reactive_app

app = build_function_app(reactive_app)
