"""Built-in passes, one module each. They are found through the ``cgsurg.passes`` entry
points declared in setup.cfg, the same way a third-party package's passes are."""
