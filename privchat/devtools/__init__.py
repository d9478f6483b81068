"""Development and test tools for privchat (fake upstream, helpers). Not used in production paths."""
