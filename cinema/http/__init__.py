"""The aiohttp front end: one module per resource, plus the shared request plumbing."""
