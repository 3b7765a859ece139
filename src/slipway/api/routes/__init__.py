"""One routes module per resource; each parses, calls one service, formats the result."""
