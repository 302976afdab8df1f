"""The localhost storage backend: each bucket is a folder under a root directory."""
