#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace core {

/// The candidate a mistyped `word` most likely meant, for "did you mean"
/// hints: the closest by edit distance (case-insensitive), if it is close
/// enough to be a typo (at most a third of the word's letters, and at least 1).
std::optional<std::string> ClosestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates);

}  // namespace core
