"""gpuad.numpy.linalg (filled in below)."""
