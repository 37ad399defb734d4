"""The server adapters; each framework's module imports only with its extra installed."""
