"""Input and output: files written atomically and read without trust, datasets, locks and interrupts."""
from .files import atomic_savez, atomic_write_bytes, load_npz_with_spec

__all__ = ["atomic_savez", "atomic_write_bytes", "load_npz_with_spec"]
