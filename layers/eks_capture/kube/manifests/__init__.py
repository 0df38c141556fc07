"""The manifests the product creates in a cluster: the capture Job and the recorder DaemonSet."""
