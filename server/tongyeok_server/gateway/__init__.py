"""The web edge: a WebSocket gateway to the Interpret session layer, stream tickets, and the meeting page.

``WebGateway`` (``server.py``) serves an aiohttp application on the
server's own event loop: the page at ``/`` (``static/``), ``POST
/v1/tickets`` (a short-lived single-use ticket for a browser, which cannot
set ``Authorization`` on a WebSocket), ``GET /v1/interpret`` (one WebSocket
is one Interpret stream, driven through ``api/interpret.InterpretFlow``
exactly as a gRPC stream is), and the languages and export the page needs.
The protocol is documented in ``docs/WEB.md``.
"""
