"""Hello World: an orchestration, a startup orchestration and a configuration object."""
