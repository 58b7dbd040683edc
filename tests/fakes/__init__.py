"""Stand-ins for system services the tests cannot use for real (each labelled FAKE)."""
