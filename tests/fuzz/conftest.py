def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fuzz: the fuzz corpus through the harness (part of the normal suite; "
                   "scripts/fuzz.py runs a longer campaign)")
