"""Fixed benchmark workloads, each verifying its own results (``reactive bench``)."""
