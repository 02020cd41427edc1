"""Benchmarks of jaxmin against SciPy, Optax, Optimistix and JAXopt (`python -m benchmarks`)."""
