"""The HTTP server side: the app factory, the ASGI front door, the Litestar routes, uvicorn options and the
lifespan that builds what lives for the process.

Owns everything about being an HTTP server (sockets, draining, which path goes where, rendering errors).
May import ``router.gateway`` and everything below it; nothing below imports this package.
"""
