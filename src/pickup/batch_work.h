// The pickup thread's file work for a batch directory (private to pickup/;
// see file_work.h for the rules): open it and check its manifest and
// template, read its recipients file a chunk at a time into a BatchBuilder,
// write the skipped-rows report, and release it once its record is durable.
//
// A BatchState belongs to the ingester on the shard; while one of these
// steps runs on the pickup thread the shard does not touch it (one step in
// flight per batch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "file_work.h"
#include "sluice/pickup/batch.h"

namespace sluice::pickup::internal {

struct BatchState {
  Item item;
  BatchLimits limits;
  int dir_fd = -1;  // the claimed directory
  int csv_fd = -1;  // its recipients file
  Manifest manifest;
  PreparedTemplate tmpl;
  std::unique_ptr<BatchBuilder> builder;
  uint64_t csv_bytes = 0;
  uint64_t size = 0;  // of the stored body
  std::string chunk;

  BatchState() = default;
  BatchState(const BatchState&) = delete;
  BatchState& operator=(const BatchState&) = delete;
  ~BatchState() { CloseFiles(); }
  void CloseFiles();
};

// What one step found.
struct BatchProgress {
  enum class Kind {
    kMore,       // read on: another chunk
    kReady,      // read whole and valid: commit it
    kRejected,   // rejected whole: moved to bad/ (`reason`)
    kUnmovable,  // rejected, but the move failed (`reason`, `error`): left claimed
    kFailed,     // an I/O error (`error`): left claimed, tried again later
  };
  Kind kind = Kind::kMore;
  std::string reason;
  std::string error;
  // kFailed: the directory itself could not be opened; else `file` (when
  // set) is the recipients file whose read failed.
  bool open_failed = false;
  std::string file;
  // kReady with skipped rows: the report, where it went, and the error if
  // it could not be written (then it goes to the diagnostics instead).
  std::string report;
  std::string report_path;
  std::string report_error;
};

// Opens the claimed directory, reads and checks the manifest and the
// template, opens the recipients file.
BatchProgress OpenBatch(const PickupFiles& files, BatchState& b);

// Reads and feeds up to `chunk_bytes` of the recipients file; at its end
// finishes the builder and writes the skipped-rows report (before the
// commit: a crash after it must not lose the report).
BatchProgress ReadBatchChunk(const PickupFiles& files, BatchState& b, size_t chunk_bytes);

// A committed batch: renamed <id>.pickup.done, then removed.
struct BatchReleased {
  std::string rename_error;  // set: left under its claimed name
  std::string done_path;
  std::string remove_error;  // set: left as .done
};
BatchReleased ReleaseBatch(const PickupFiles& files, const Item& item);

}  // namespace sluice::pickup::internal
