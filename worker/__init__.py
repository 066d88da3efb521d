"""The model worker: serves one model over the worker protocol and registers with a controller."""
