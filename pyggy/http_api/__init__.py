"""The HTTP door: Iggy's REST API (https://iggy.apache.org/docs/ "HTTP API"), Prometheus
`/metrics` and the web console, on the server's event loop with aiohttp.

aiohttp because it is the established asyncio HTTP server (HTTP/1.1 keep-alive, streaming
bodies with a size limit, TLS through `ssl.SSLContext`, middlewares) and runs on the uvloop loop
the other doors use; no second event loop or thread. Routes live in one table (`table.py`);
handlers are thin: parse the JSON/query (`body.py`), check the same `core.permissions` as the
TCP door, call the engine's services, render JSON (`views.py`).
"""
