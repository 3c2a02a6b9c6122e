#pragma once

#include <functional>
#include <string>

#include "builder/content_store.h"
#include "builder/layer_writer.h"
#include "core/result.h"
#include "spec/app.h"

namespace builder {

/// One step's progress, for the progress display: reported when the step
/// starts (finished false) and when it is done. The base is step 0.
struct StepReport {
  std::string image;
  std::size_t index = 0;  // 1-based; 0 is the base
  bool finished = false;
  std::size_t count = 0;
  std::string description;  // "copy ./www /www"
  bool cached = false;
  bool has_layer = false;
  std::uint64_t layer_bytes = 0;
  double seconds = 0;
};

struct BuildOptions {
  bool no_cache = false;
  LayerOptions layer;
  std::function<void(const StepReport&)> on_step;  // called as each step starts and ends
};

/// An image in the store: its manifest, tagged with the image's name.
struct BuiltImage {
  std::string name;
  Descriptor manifest;
};

/// Builds the images of an app into a ContentStore, reproducibly: the same
/// spec and inputs give the same manifest digest on any machine, in any
/// folder, at any time. Each step is looked up in the layer cache by its key,
/// sha256(parent key, the step's canonical JSON, digests of its inputs), so a
/// rebuild with nothing changed only hashes inputs, and a change to step k
/// rebuilds steps k..n. The image is tagged only once every step succeeded:
/// a failed build leaves no partial image.
class ImageBuilder {
 public:
  ImageBuilder(ContentStore& store, BuildOptions options)
      : store_(store), options_(std::move(options)) {}

  core::Result<BuiltImage> Build(const spec::App& app, const spec::Image& image);

 private:
  ContentStore& store_;
  BuildOptions options_;
};

}  // namespace builder
