"""Sans-I/O codec of the native Iggy protocol (VSR 0.9 framing and classic 0.8 framing).

Nothing in this package touches sockets or asyncio: it turns bytes into values and back.
"""
