"""Developer tooling: `tools.stack` starts and stops the whole local stack (`make run`)."""
