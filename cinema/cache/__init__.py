"""The read cache's parts: what is cached and what invalidates it (`kinds`), the in-process
layer (`layer`) and the Redis layer shared by every process (`shared`). The cache actor
(cinema/actors/cache.py) owns them."""
