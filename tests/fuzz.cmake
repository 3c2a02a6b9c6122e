# libFuzzer runs of the spec readers, built with clang in build/fuzz.
