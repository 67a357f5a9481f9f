"""The reference webhook as a real HTTPS AdmissionReview server.

The package is split by job so that each piece can be reasoned about (and tested) alone:

* :mod:`sim.server.limits` - the bounds a client cannot push the server past;
* :mod:`sim.server.review` - stack-agnostic request handling (routing, envelope checks,
  the core's mutation), bytes in and bytes out, so every HTTP stack answers identically;
* :mod:`sim.server.rsgi` - the adapter for granian's RSGI interface (the chosen stack);
* :mod:`sim.server.tls` - certificates: the self-signed convenience, key normalisation,
  and the fingerprint a certification report names;
* :mod:`sim.server.serve` - starting granian with TLS, timeouts and graceful shutdown;
* :mod:`sim.server.writedeadline` - cutting off a client that does not read its answer;
* :mod:`sim.server.launch` - running the server as a child process for tests and CI.
"""
