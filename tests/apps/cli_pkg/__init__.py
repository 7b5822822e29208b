"""Package for test_cli.py's --module tests."""
