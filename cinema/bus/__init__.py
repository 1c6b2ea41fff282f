"""Event buses: in-process pub/sub, other instances' commits, and (later) RabbitMQ."""
