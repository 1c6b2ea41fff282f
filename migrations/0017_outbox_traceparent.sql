-- depends: 0016_catalog
-- The W3C trace context of the transaction that wrote the event (null with tracing off): the
-- relay publishes the event as a child of that trace, so one trace runs from an HTTP write to
-- what a RabbitMQ consumer receives.
ALTER TABLE outbox ADD COLUMN traceparent text;
