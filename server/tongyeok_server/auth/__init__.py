"""Who is calling: caller identity, credentials (API keys, JWTs), scopes and per-caller limits."""
