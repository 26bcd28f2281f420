"""Hardware and host drivers (installed as ``lwm2md.drivers``); free of LwM2M concepts."""
