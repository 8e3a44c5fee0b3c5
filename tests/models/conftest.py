"""Model tests use the vendored reference fixtures of tests/conftest.py."""
