"""Long-lived services of one privchat process: the registry handlers use, and supervised workers."""
