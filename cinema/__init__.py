"""cinema: an actor-based movie-catalog service on asyncio."""

__version__ = "0.1.0"
