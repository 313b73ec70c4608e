"""Back up blobs: list, copy in parallel, sum the bytes. Local folders stand in for blob
containers."""
