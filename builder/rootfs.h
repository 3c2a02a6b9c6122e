#pragma once

#include <filesystem>

#include "core/result.h"

namespace builder {

/// Applies one OCI layer blob (a tar, gzip'd or not) onto the folder `root`,
/// as image-spec layer.md says a layer changes the file system below it:
/// - entries are created or replace what is there (a folder over a folder
///   keeps its content and takes the new mode and owner; anything else is
///   removed first, a folder with all it holds);
/// - `DIR/.wh.NAME` deletes NAME, `DIR/.wh..wh..opq` hides everything lower
///   layers put in DIR (what this same layer puts there stays, in whatever
///   order the entries come); whiteouts are not extracted themselves;
/// - mode (with setuid/setgid/sticky), numeric uid and gid, symlinks,
///   hardlinks and mtimes are kept (folders' mtimes are set last, so that
///   their own content does not bump them); device nodes, fifos and sockets
///   are skipped; the extended attributes layers carry (IsLayerXattr:
///   `security.capability`, `user.*`) are set on files and folders, others
///   are ignored.
///
/// It is built for hostile layers: nothing is ever written, deleted, chmod'ed,
/// chown'ed or linked outside `root`. Every parent path is resolved with
/// openat2(RESOLVE_IN_ROOT) on a descriptor of `root`, so symlinks (and
/// chains of them) resolve as if `root` were `/`, and the last component is
/// then worked on through that parent's descriptor without following it.
/// Absolute names are taken relative to `root`; a name or hardlink target
/// whose `..` climbs above `root`, and a whiteout of `.` or `..`, fail the
/// whole layer with an error naming the entry (what came before it stays
/// applied: callers unpack into a folder of their own and drop it on error).
///
/// Meant to run as root (to set owners); needs Linux 5.6+ for openat2.
///
/// With WhiteoutMode::kOverlay the layer is meant to be unpacked alone into a
/// folder of its own, which then serves as one overlayfs lowerdir (the
/// agent's image-layer cache): whiteouts are not applied but kept in
/// overlayfs's own form, as Docker's overlay2 driver keeps them:
/// - `DIR/.wh.NAME` becomes DIR/NAME, a character device 0/0 (mode 0,
///   owner 0:0), which hides NAME of lower layers in the overlay;
/// - `DIR/.wh..wh..opq` sets the extended attribute
///   `trusted.overlay.opaque` = "y" on DIR, which hides all lower layers put
///   in DIR (DIR is made when the layer has no entry for it).
/// Both need root (CAP_MKNOD, CAP_SYS_ADMIN for trusted.* attributes) and
/// are made through the same confined descriptors as every other entry.
/// agents::ContainerRoot reads the same form when it copies layers instead
/// of mounting them.
enum class WhiteoutMode {
  kApply,    // delete what whiteouts name (every layer of an image into one folder)
  kOverlay,  // keep whiteouts as overlayfs markers (one layer per folder)
};

/// The extended attribute and value that mark an opaque folder in overlay form.
inline constexpr char kOverlayOpaqueXattr[] = "trusted.overlay.opaque";
inline constexpr char kOverlayOpaqueValue[] = "y";

core::Status UnpackLayer(const std::filesystem::path& blob, const std::filesystem::path& root,
                         WhiteoutMode whiteouts = WhiteoutMode::kApply);

}  // namespace builder
