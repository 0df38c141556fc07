"""The capture agent: one image, two roles (``capture`` runs tcpdump, ``upload`` ships its files to S3)."""
