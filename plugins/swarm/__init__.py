"""Swarm: multi-source piece exchange between peers (placeholder while the provider lands)."""
