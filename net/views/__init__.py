"""Networking debug views behind `pykubelet net ...`."""
