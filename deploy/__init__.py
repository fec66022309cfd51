"""Deployment: the one-command local cluster, nginx config and process lists (docs/DEPLOY.md)."""
