"""The localhost compute backend: a warm process pool on this machine."""
