"""Sample models for `mx-dcn check --model` (used by tests/test_cli.py and the CLI documentation)."""
