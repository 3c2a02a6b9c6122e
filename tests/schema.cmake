# The app schema: examples validate against it; the loader and it agree on good and bad specs.
