"""The gRPC edge: validation of requests, conversion to and from the wire, the servicer."""
