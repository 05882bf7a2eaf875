"""Use cases: what the API, the CLI and the jobs ask the bridge to do."""
