"""Deployment tooling: the route table and the files generated from it (nginx, Kubernetes)."""
