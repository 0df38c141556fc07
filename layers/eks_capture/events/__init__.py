"""The events that start the functions: EventBridge envelopes, alarms, requests, S3 events, closings."""
