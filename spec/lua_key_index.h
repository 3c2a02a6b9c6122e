#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace spec {

/// Where each table key is written in a Lua source, so that a validation
/// error in a table the script returned can point at a line. Lua keeps no
/// source positions in tables; this index recovers them from the text: every
/// `name =` and `["name"] =` outside strings and comments is an entry.
///
/// Locate() matches a key path (functions.api.cpu) as an ordered subsequence
/// of entries: each key is searched after the previous one, keys that are
/// computed at run time (functions["llm-" .. i]) are skipped, so a field set
/// inside a loop resolves to the line in the loop body that sets it.
class LuaKeyIndex {
 public:
  LuaKeyIndex(std::string_view source, std::string file);

  /// A partly matched path: where its last found key is written, and where
  /// the search for the next key starts.
  struct Match {
    core::Location location;
    std::size_t next = 0;
  };

  /// The match of the empty path: the file alone.
  Match Root() const { return Match{core::Location{file_, 0, 0}, 0}; }

  /// `parent` extended by `key`; unchanged when `key` is written nowhere after it.
  Match Descend(const Match& parent, const std::string& key) const;

  /// The position of the last key of `path` found; the file alone if none is.
  core::Location Locate(const std::vector<std::string>& path) const;

 private:
  struct Entry {
    int line;
    int column;
    std::size_t order;  // position among all entries
  };
  std::unordered_map<std::string, std::vector<Entry>> entries_;  // by key, in source order
  std::size_t count_ = 0;
  std::string file_;
};

}  // namespace spec
