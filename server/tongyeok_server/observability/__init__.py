"""What the server tells its operator: logs (and, later, metrics)."""
