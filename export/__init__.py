"""Export: SLAYER -> NIR -> Lava processes (and netx HDF5, ONNX), verified spike for spike."""
