"""The Azure host: Functions triggered by Event Hubs, snapshots and statuses in Blob
Storage. Only this package and ``function_app.py`` import the Azure SDKs."""
