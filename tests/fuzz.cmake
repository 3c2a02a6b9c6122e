# libFuzzer runs of the spec readers, built with clang in build/fuzz.
#
# The fuzz targets (spec/*_fuzz.cc) need clang's -fsanitize=fuzzer, so this
# gcc build configures the same source tree a second time, with clang and
# GANTRY_FUZZ=ON, as an external project in ${PROJECT_BINARY_DIR}/fuzz; it is
# rebuilt as part of `all`. Each target then runs for 30 seconds as a CTest
# test labelled `fuzz`:  ctest -L fuzz --output-on-failure

find_program(GANTRY_CLANGXX clang++)
if(NOT GANTRY_CLANGXX)
  message(STATUS "clang++ not found: the spec fuzz targets and the `fuzz` tests are skipped")
  return()
endif()

include(ExternalProject)

set(GANTRY_FUZZ_BINARY_DIR ${PROJECT_BINARY_DIR}/fuzz)
set(GANTRY_FUZZ_FORMATS yaml lua)
set(GANTRY_FUZZ_BYPRODUCTS)
foreach(format ${GANTRY_FUZZ_FORMATS})
  list(APPEND GANTRY_FUZZ_BYPRODUCTS ${GANTRY_FUZZ_BINARY_DIR}/spec/${format}_reader_fuzz)
endforeach()

ExternalProject_Add(gantry_fuzz
  SOURCE_DIR ${PROJECT_SOURCE_DIR}
  BINARY_DIR ${GANTRY_FUZZ_BINARY_DIR}
  CMAKE_GENERATOR Ninja
  CMAKE_ARGS
    -DCMAKE_CXX_COMPILER=${GANTRY_CLANGXX}
    -DGANTRY_FUZZ=ON
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
  CMAKE_CACHE_ARGS
    "-DCMAKE_PREFIX_PATH:STRING=${CMAKE_PREFIX_PATH}"
  BUILD_ALWAYS ON
  INSTALL_COMMAND ""
  BUILD_BYPRODUCTS ${GANTRY_FUZZ_BYPRODUCTS}
)

# fuzz_yaml_reader and fuzz_lua_reader. The timeout leaves room for loading
# the corpus and LeakSanitizer's check at exit.
foreach(format ${GANTRY_FUZZ_FORMATS})
  add_test(NAME fuzz_${format}_reader
    COMMAND ${CMAKE_COMMAND}
      -DFUZZER=${GANTRY_FUZZ_BINARY_DIR}/spec/${format}_reader_fuzz
      -DSEEDS=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${format}
      -DCORPUS=${CMAKE_CURRENT_BINARY_DIR}/fuzz/corpus/${format}
      -DARTIFACTS=${CMAKE_CURRENT_BINARY_DIR}/fuzz/artifacts/${format}
      -DDICT=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${format}.dict
      -DSECONDS=30
      -P ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzzer.cmake)
  set_tests_properties(fuzz_${format}_reader PROPERTIES LABELS fuzz TIMEOUT 120)
endforeach()
