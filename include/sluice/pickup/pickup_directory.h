// The pickup directory on disk (docs/PICKUP.md): DIR/tmp, DIR/new, DIR/bad.
// Producers write DIR/tmp/NAME, fsync, and rename it into DIR/new/ (as with
// Maildir); Sluice claims files from new/ by renaming them into its spool
// (<spool>/<shard>/claimed/<id>.pickup) and puts rejected ones into bad/
// with NAME.error beside them.
//
// Plain blocking POSIX calls: these run at start-up, in `sluice inject`, or
// on the pickup thread (a rejected file, a finished batch); never on a
// shard thread in steady state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice::pickup {

inline constexpr std::string_view kClaimedDir = "claimed";
inline constexpr std::string_view kClaimedSuffix = ".pickup";
// A claimed batch directory whose record is durable is renamed
// "<id>.pickup.done" before its files are removed: whatever is left under
// that name is removed at start-up, never processed again.
inline constexpr std::string_view kReleasedSuffix = ".done";

// Creates DIR and DIR/{tmp,new,bad} (mode 0700) when missing, and checks
// that DIR/new lives on the same filesystem as `spool_shard_dir` (claims
// are renames). Also creates <spool_shard_dir>/claimed.
//
// With a `submit_group` (a gid; -1 for none): DIR is made mode 0710 and
// DIR/tmp, DIR/new mode 1730, all of that group, every start. Members of the
// group (in practice the setgid `sluice sendmail`) may then create files in
// tmp/ and rename them into new/, but not list either folder, and the
// sticky bit keeps them from removing files not their own; bad/ stays 0700.
// The daemon must own DIR or be root, and belong to the group.
absl::Status PrepareDirectories(const std::string& dir, const std::string& spool_shard_dir,
                                long submit_group = -1);

// `sluice inject`: writes `bytes` to DIR/tmp/UNIQUE, fsyncs it, renames it
// to DIR/new/UNIQUE and fsyncs DIR/new. Returns UNIQUE. Fails (without
// creating anything) when DIR/tmp or DIR/new is missing or not writable.
absl::StatusOr<std::string> Inject(const std::string& dir, std::string_view bytes);

// One file of a batch for InjectBatch: `contents`, or the file at
// `copy_from` (streamed, so a recipients file of any size is never held).
struct BatchFile {
  std::string name;  // inside NAME.batch/
  std::string contents;
  std::string copy_from;
};

// `sluice inject --batch`: creates DIR/tmp/UNIQUE.batch/, writes each file
// and fsyncs it, fsyncs the directory, renames it to DIR/new/UNIQUE.batch
// and fsyncs DIR/new. Returns "UNIQUE.batch". Fails like Inject when DIR/tmp
// or DIR/new is missing or not writable; on any failure the half-written
// directory is removed.
absl::StatusOr<std::string> InjectBatch(const std::string& dir,
                                        const std::vector<BatchFile>& files);

// A unique file name: "<seconds>.<micros>.P<pid>R<random>.<host>".
std::string UniqueName();

// Writes `text` to `path` (O_TRUNC) and fsyncs it.
absl::Status WriteFileSynced(const std::string& path, std::string_view text);

// Removes `path`: a file, or a directory with everything in it (at most 8
// levels deep). Symbolic links are removed, never followed. A missing path
// is not an error.
absl::Status RemoveTree(const std::string& path);

}  // namespace sluice::pickup
