"""In-memory stand-ins for the product's I/O seams, with setters, for tests and benchmarks."""
