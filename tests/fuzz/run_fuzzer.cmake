# Runs one libFuzzer target for a fixed time: the `fuzz_*` tests of tests/fuzz.cmake.
#
#   cmake -DFUZZER=... -DSEEDS=... -DCORPUS=... -DARTIFACTS=... -DDICT=... -DSECONDS=... -P run_fuzzer.cmake
#
# Every run starts from the checked-in seeds (SEEDS), copied into a fresh
# scratch corpus in the build tree (CORPUS), so the source tree is never
# written and runs are comparable. Inputs that crash, leak, hang or break an
# invariant are saved under ARTIFACTS (crash-*, leak-*, timeout-*, oom-*); the
# test fails whenever libFuzzer exits non-zero. Reproduce one with
#   FUZZER ARTIFACTS/crash-...

foreach(variable FUZZER SEEDS CORPUS ARTIFACTS DICT SECONDS)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${variable}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${CORPUS}")
file(MAKE_DIRECTORY "${CORPUS}" "${ARTIFACTS}")
file(GLOB seeds "${SEEDS}/*")
file(COPY ${seeds} DESTINATION "${CORPUS}")

# -timeout: one input running this long is a hang. -rss_limit_mb: a bound on
# the whole process, far above what the Lua sandbox's 16 MiB allows a script.
# LeakSanitizer stays on (detect_leaks=1 is ASan's default on Linux).
execute_process(
  COMMAND "${FUZZER}"
          -max_total_time=${SECONDS} -max_len=8192 -timeout=10 -rss_limit_mb=2048
          -dict=${DICT} -artifact_prefix=${ARTIFACTS}/ -print_final_stats=1 -print_funcs=0
          "${CORPUS}"
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${result}); the input is saved in ${ARTIFACTS}")
endif()
