"""The dead-letter queue: pushes that cannot succeed, kept on the broker for operators."""
