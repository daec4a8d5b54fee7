// Small files replaced whole and durably: the retry state written at a stop
// and the administrator's holds and suspensions (admin.state). Plain
// blocking I/O, for start-up, stop and rare administrative writes only,
// never on a delivery path.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice::spool {

// fsync of a directory, so that a rename or unlink in it is durable.
absl::Status SyncDirectory(const std::string& dir);

// Writes `bytes` to `dir/name.tmp`, fdatasyncs it, renames it over
// `dir/name` and syncs `dir`: a reader sees the old file or the new one,
// never a mix, also after a crash. On failure the temporary is removed and
// the old file is left as it was.
absl::Status ReplaceFileDurably(const std::string& dir, std::string_view name,
                                std::string_view bytes);

// The reading side: removes `dir/name.tmp` (a replacement that did not
// finish) and returns the whole of `dir/name`, or nullopt when it does not
// exist.
absl::StatusOr<std::optional<std::string>> ReadReplacedFile(const std::string& dir,
                                                            std::string_view name);

}  // namespace sluice::spool
