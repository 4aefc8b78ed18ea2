"""``python -m driver review RUN_DIR``: the run folder served as a review app on
loopback (``app``: the Starlette application; ``serve``: host, port, token and the
uvicorn server). A command: it may import every layer; nothing imports it."""
