"""One small function per native command: decode the request, check permissions, call the
engine, encode the reply payload. Registered in `native_wire.table`."""
