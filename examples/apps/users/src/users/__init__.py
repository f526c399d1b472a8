"""User service: accounts, password hashing, signed tokens and an HTTP API."""
