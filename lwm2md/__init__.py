"""lwm2md: an OMA LightweightM2M client daemon for Linux IoT gateways."""

__version__ = "0.1.0"
