"""The chaos tests use the real-broker fixtures (kafka, env, start_worker) of tests/conftest.py,
one broker per session shared with tests/integration and tests/browser."""
