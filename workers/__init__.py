"""The thin RQ worker entry for deployments: `python -m workers --queues fetch` (the work lives in
clipper.pipeline; `clipper worker` runs the same)."""
