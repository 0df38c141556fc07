"""Kubernetes: the EKS client and token, cluster calls, names, labels, selectors, node facts, manifests."""
