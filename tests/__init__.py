"""privchat tests: real PostgreSQL, real servers on loopback, fakes only for external services."""
