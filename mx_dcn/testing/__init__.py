"""What the tests and `mx-dcn regress` share: the float64 oracle (oracle.py) and the case suite (cases.py)."""
