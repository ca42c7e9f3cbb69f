"""Business rules: plain functions taking a session, owning their transaction."""
