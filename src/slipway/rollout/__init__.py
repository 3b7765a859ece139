"""Controlled rollout: traffic plans, staged rollouts, canary analysis, the controller."""
