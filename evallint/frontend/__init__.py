"""Front end: source text to LibCST module, import aliases, and per-function control-flow graphs."""
