#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "builder/layer_writer.h"
#include "core/result.h"
#include "spec/app.h"

namespace builder {

/// What a copy step takes from the build context: the layer entries it will
/// write and the digest of everything that decides their bytes (paths,
/// types, modes, contents, link targets), which goes into the step's cache key.
struct CopySource {
  std::vector<LayerEntry> entries;
  std::string digest;
};

/// Collects a copy step's files. `src` is a file (it lands at `dst`) or a
/// folder (its content lands in `dst`). Symlinks are copied as links, never
/// followed; a `src` that leaves the context, also through a symlink, is
/// refused. The ignore file, if any, holds one pattern per line as in
/// .dockerignore: `#` comments, shell globs matched against the path
/// relative to `src` (a pattern without '/' matches a name at any depth), a
/// trailing '/' matches folders only, and `!` re-includes. Owners are 0:0;
/// mtimes are `epoch`, because a checkout's mtimes are not content.
core::Result<CopySource> CollectCopySource(const std::filesystem::path& context,
                                           const spec::CopyStep& step, std::int64_t epoch);

}  // namespace builder
