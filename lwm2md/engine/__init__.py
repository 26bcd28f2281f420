"""Protocol state machines: device management, attributes, observe, registration, send.

Nothing in this package does I/O of its own: time comes from an injected
:class:`~lwm2md.engine.clock.Clock`, requests leave through injected senders.
"""
