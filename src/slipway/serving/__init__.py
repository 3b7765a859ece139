"""Serving: endpoints, the pool of loaded predictors, inference and prediction records."""
