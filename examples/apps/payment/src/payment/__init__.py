"""Payment service: fees, currencies, validation, a ledger, refunds and an HTTP API."""
