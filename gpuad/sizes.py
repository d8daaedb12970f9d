"""Byte counts shared by the AD layer and the compiler: the size from which a computation checks
its memory against what is free, and how a size reads in a message."""

CHECK_FROM = 64 * 2**20  # sweeps (chunk_size=None) and compiled calls estimated at least this are checked


def size_text(b):
    """Bytes in the largest binary unit that keeps them at least 1: 1.5 GiB, 300 MiB."""
    unit = next((u for u in range(4, 0, -1) if b >= 1024**u), 0)
    return f"{b / 1024**unit:.3g} {('B', 'KiB', 'MiB', 'GiB', 'TiB')[unit]}"
