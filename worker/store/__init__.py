"""The coalescing store: the connection, every key's name, the Lua loader and the records all stages share."""
