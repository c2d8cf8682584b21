"""UE key client: sans-I/O state machine, retry/jitter policy, key store and events."""
