# The app schema: examples validate against it; the loader and it agree on good and bad specs.
# tests/schema_test.py needs Python's jsonschema (4.0 or newer, for draft 2020-12) and PyYAML.
# Debian's python3 first: .ci/install-deps installs python3-jsonschema and
# python3-yaml for it, whatever other Python is earlier on the PATH.
find_program(GANTRY_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(GANTRY_PYTHON3 python3 REQUIRED)
add_test(NAME schema
  COMMAND ${GANTRY_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/schema_test.py $<TARGET_FILE:gantry> ${PROJECT_SOURCE_DIR})
set_tests_properties(schema PROPERTIES LABELS "schema" TIMEOUT 300)
