"""The HTTP edge: app factory, one routes module per resource, error rendering."""
