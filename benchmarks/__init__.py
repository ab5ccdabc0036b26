"""The dlviz_gpu benchmark suite: ``python -m benchmarks raster|gpu``.

``raster``  CPU matrix rasterisation against the machine's streaming bandwidth,
            Datashader and NumPy, measured in one process on one array.
``gpu``     the GPU check: compile every CUDA kernel, compare it with the CPU
            kernel, time it against torch and a device-to-device copy.

Nothing here is imported by the package or the tests; timings are reports,
never assertions.  See benchmarks/README.md.
"""
