"""RQ job functions and the worker entry point (thin: the work lives in `clipper`)."""
