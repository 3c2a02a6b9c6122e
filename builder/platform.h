#pragma once

namespace builder {

/// The architecture images are built for: this machine's, in the names OCI
/// configs and Debian both use (GOARCH and dpkg agree on these two).
#if defined(__x86_64__)
inline constexpr char kArchitecture[] = "amd64";
#elif defined(__aarch64__)
inline constexpr char kArchitecture[] = "arm64";
#else
#error "unsupported architecture: add its OCI and dpkg name here"
#endif

}  // namespace builder
