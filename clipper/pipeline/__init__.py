"""Job running: the stage table, the stages, source kinds, queueing, workers and the reconciler."""
