"""How the verifier reaches a system under test: the Target protocol and its implementations."""
