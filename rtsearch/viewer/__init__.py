"""The realtime viewer: Dear PyGui window, worker thread, live sources (`rtsearch view`)."""
