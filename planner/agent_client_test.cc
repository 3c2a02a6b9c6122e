#include "planner/agent_client.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;

TEST_CASE("a schedule's status reads as a few words: its next run, or why it is held",
          "[planner][agent_client]") {
  CHECK(planner::ScheduleSummary({{"next_fire", "2026-12-04T03:00:00+01:00"},
                                  {"skipped_runs", 0}}) == "next 2026-12-04T03:00:00+01:00");
  CHECK(planner::ScheduleSummary({{"skipped_runs", 0}}) == "next never");
  CHECK(planner::ScheduleSummary({{"next_fire", "2026-12-04T03:00:00+01:00"},
                                  {"skipped_runs", 1},
                                  {"last_skip_reason", "the run before was still running"}}) ==
        "next 2026-12-04T03:00:00+01:00; 1 run skipped (the last: the run before was still "
        "running)");
  CHECK(planner::ScheduleSummary({{"held", "its image is not ready yet"}, {"skipped_runs", 3}}) ==
        "held: its image is not ready yet; 3 runs skipped");
}

}  // namespace
