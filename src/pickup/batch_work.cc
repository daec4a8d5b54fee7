// The pickup thread's file work for batch directories (batch_work.h).
#include "batch_work.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/pickup/pickup_directory.h"

namespace sluice::pickup::internal {
namespace {

// The invalid outcomes are rejected here, on the pickup thread.
BatchProgress Rejected(const PickupFiles& files, BatchState& b, std::string reason) {
  b.CloseFiles();
  BatchProgress p;
  p.reason = std::move(reason);
  absl::Status s = files.Reject(b.item, p.reason);
  p.kind = s.ok() ? BatchProgress::Kind::kRejected : BatchProgress::Kind::kUnmovable;
  if (!s.ok()) p.error = std::string(s.message());
  return p;
}

BatchProgress Failed(BatchState& b, std::string error) {
  b.CloseFiles();
  BatchProgress p;
  p.kind = BatchProgress::Kind::kFailed;
  p.error = std::move(error);
  return p;
}

// The manifest and the template: small, read and checked at once.
ReadOutcome ReadManifestAndTemplate(BatchState& b, std::string& why) {
  std::string bytes;
  const std::string manifest_name(kManifestName);
  ReadOutcome got = ReadAt(b.dir_fd, manifest_name, b.limits.max_manifest_size, manifest_name,
                           "manifest size limit", true, bytes, why);
  if (got == ReadOutcome::kOk) {
    BatchError e;
    if (!ParseManifest(bytes, b.limits, b.manifest, e)) {
      why = e.ToString();
      return ReadOutcome::kInvalid;
    }
    const std::string& name = b.manifest.template_file;
    got = ReadAt(b.dir_fd, name, b.limits.max_template_size, name, "message size limit", true,
                 bytes, why);
  }
  if (got == ReadOutcome::kOk) {
    BatchError e;
    if (!PrepareTemplate(b.manifest.template_file, bytes, b.limits, b.tmpl, e, &b.manifest)) {
      why = e.ToString();
      return ReadOutcome::kInvalid;
    }
  }
  return got;
}

// The recipients file: opened now, read a chunk per step.
ReadOutcome OpenRecipients(BatchState& b, std::string& why) {
  const std::string& name = b.manifest.recipients_file;
  b.csv_fd = openat(b.dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (b.csv_fd < 0) {
    why = errno == ELOOP    ? absl::StrCat(name, ": a symbolic link, not a regular file")
          : errno == ENOENT ? absl::StrCat(name, ": missing")
                            : absl::StrCat("open ", name, ": ", std::strerror(errno));
    return errno == ELOOP || errno == ENOENT ? ReadOutcome::kInvalid : ReadOutcome::kError;
  }
  if (fstat(b.csv_fd, &st) != 0) {
    why = absl::StrCat("stat ", name, ": ", std::strerror(errno));
    return ReadOutcome::kError;
  }
  if (!S_ISREG(st.st_mode)) {
    why = absl::StrCat(name, ": not a regular file");
    return ReadOutcome::kInvalid;
  }
  if (static_cast<uint64_t>(st.st_size) > b.limits.max_recipients_file_size) {
    why = absl::StrCat(name, ": file of ", st.st_size, " bytes exceeds the limit (",
                       b.limits.max_recipients_file_size, " bytes)");
    return ReadOutcome::kInvalid;
  }
  return ReadOutcome::kOk;
}

// The report of an accepted batch's skipped rows (NAME.error in bad/).
void WriteSkippedReport(const PickupFiles& files, const BatchState& b, BatchProgress& p) {
  const BatchBuilder& builder = *b.builder;
  std::string& note = p.report;
  for (const std::string& line : builder.notes()) absl::StrAppend(&note, Printable(line), "\n");
  if (builder.skipped() > builder.notes().size()) {
    absl::StrAppend(&note, "... and ", builder.skipped() - builder.notes().size(),
                    " more rows skipped (only the first ", builder.notes().size(),
                    " are listed)\n");
  }
  absl::StrAppend(&note, "batch accepted: ", builder.accepted(), " recipients queued, ",
                  builder.skipped(), " rows of ", b.manifest.recipients_file, " skipped\n");
  absl::Status s = files.WriteReport(b.item, note, p.report_path);
  if (!s.ok()) p.report_error = std::string(s.message());
}

}  // namespace

void BatchState::CloseFiles() {
  if (csv_fd >= 0) close(csv_fd);
  if (dir_fd >= 0) close(dir_fd);
  csv_fd = dir_fd = -1;
}

BatchProgress OpenBatch(const PickupFiles& files, BatchState& b) {
  (void)files;
  b.dir_fd = open(b.item.claimed_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (b.dir_fd < 0) {
    BatchProgress p = Failed(b, std::strerror(errno));
    p.open_failed = true;
    return p;
  }
  std::string why;
  ReadOutcome got = ReadManifestAndTemplate(b, why);
  if (got == ReadOutcome::kOk) got = OpenRecipients(b, why);
  switch (got) {
    case ReadOutcome::kInvalid:
      return Rejected(files, b, why);
    case ReadOutcome::kError:
      return Failed(b, why);
    case ReadOutcome::kOk:
      break;
  }
  b.builder = std::make_unique<BatchBuilder>(b.tmpl, b.manifest.template_file,
                                             b.manifest.recipients_file, b.limits);
  return BatchProgress{};
}

BatchProgress ReadBatchChunk(const PickupFiles& files, BatchState& b, size_t chunk_bytes) {
  b.chunk.resize(chunk_bytes);
  size_t got = 0;
  bool eof = false;
  while (got < b.chunk.size()) {
    ssize_t n = read(b.csv_fd, b.chunk.data() + got, b.chunk.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      BatchProgress p = Failed(b, std::strerror(errno));
      p.file = b.manifest.recipients_file;
      return p;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    got += static_cast<size_t>(n);
  }
  const bool first = b.csv_bytes == 0;
  b.csv_bytes += got;
  if (b.csv_bytes > b.limits.max_recipients_file_size) {
    // It grew after the claim: a producer still writing into it.
    return Rejected(files, b,
                    absl::StrCat(b.manifest.recipients_file, ": file exceeds the limit (",
                                 b.limits.max_recipients_file_size, " bytes)"));
  }
  bool ok = b.builder->Feed(std::string_view(b.chunk.data(), got));
  if (ok && first && !eof) files.MaybeAbort("batch-mid-csv");
  if (ok && eof) ok = b.builder->Finish();
  if (!ok) return Rejected(files, b, b.builder->error().ToString());
  BatchProgress p;
  if (!eof) return p;
  b.CloseFiles();
  b.chunk.clear();
  b.chunk.shrink_to_fit();
  p.kind = BatchProgress::Kind::kReady;
  if (b.builder->skipped() > 0) WriteSkippedReport(files, b, p);
  return p;
}

BatchReleased ReleaseBatch(const PickupFiles& files, const Item& item) {
  // Renamed first, in one step: from here on recovery removes whatever is
  // left without looking for its record (which delivery may retire).
  BatchReleased r;
  r.done_path = item.claimed_path + std::string(kReleasedSuffix);
  if (rename(item.claimed_path.c_str(), r.done_path.c_str()) != 0) {
    r.rename_error = std::strerror(errno);
    return r;  // start-up recovery finds the record's origin and removes it
  }
  if (files.abort_at("batch-mid-release")) {
    (void)unlink(absl::StrCat(r.done_path, "/", base::Av(kManifestName)).c_str());
    files.MaybeAbort("batch-mid-release");
  }
  if (absl::Status s = RemoveTree(r.done_path); !s.ok()) r.remove_error = std::string(s.message());
  return r;
}

}  // namespace sluice::pickup::internal
