// `sluice inject --batch DIR/manifest.toml`: the manifest names its
// template and recipients file, beside it. All three are checked as the
// daemon checks them (pickup/batch.h: so the producer hears of an unknown
// field or a missing email column now), then copied into
// PICKUP/tmp/UNIQUE.batch/ and renamed into new/ (pickup::InjectBatch).
//
// Limits: the manifest and template are read into memory, each at most its
// configured limit (pickup::BatchLimitsFor); the recipients file is
// streamed through the checker and copied, never held whole.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "sluice/config/config.h"
#include "sluice/pickup/batch.h"
#include "sluice/pickup/config_limits.h"
#include "sluice/pickup/pickup_directory.h"
#include "usage.h"

namespace sluice::cli {
namespace {

// Reads `path` into `out`, stopping once it holds more than `max` bytes
// (the checker then reports the size). False, with the reason on stderr,
// when it cannot be read.
bool ReadFileInto(const std::string& path, size_t max, std::string& out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "sluice: inject: cannot read %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
  char buf[64 * 1024];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() <= max) out.append(buf, n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) std::fprintf(stderr, "sluice: inject: cannot read %s\n", path.c_str());
  return !failed;
}

int Refuse(const pickup::BatchError& e) {
  std::fprintf(stderr, "sluice: inject: batch not accepted: %s\n", e.ToString().c_str());
  return 1;
}

// Streams the recipients file through the daemon's checker
// (pickup::BatchBuilder). 0 when the batch may go, else the exit code
// (the reason is on stderr). Rows the daemon would skip are reported, not
// refused: it queues the valid rows too.
int CheckRecipients(const std::string& path, const pickup::PreparedTemplate& prepared,
                    const pickup::Manifest& manifest, const pickup::BatchLimits& limits) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "sluice: inject: cannot read %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  pickup::BatchBuilder builder(prepared, manifest.template_file, manifest.recipients_file, limits);
  char buf[256 * 1024];
  size_t n;
  uint64_t total = 0;
  bool ok = true;
  while (ok && (n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    total += n;
    if (total > limits.max_recipients_file_size) {
      std::fclose(f);
      return Refuse(pickup::BatchError{
          manifest.recipients_file, 0, 0,
          absl::StrCat("file exceeds the limit (", limits.max_recipients_file_size, " bytes)")});
    }
    ok = builder.Feed(std::string_view(buf, n));
  }
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) {
    std::fprintf(stderr, "sluice: inject: cannot read %s\n", path.c_str());
    return 1;
  }
  if (!ok || !builder.Finish()) return Refuse(builder.error());
  if (builder.skipped() > 0) {
    // Injected anyway, as the daemon queues the valid rows; it reports
    // the skipped ones in DIR/bad/NAME.error.
    std::fprintf(stderr, "sluice: inject: %zu rows of %s will be skipped, first: %s\n",
                 builder.skipped(), manifest.recipients_file.c_str(),
                 builder.notes().front().c_str());
  }
  return 0;
}

// Copies the three files into the pickup directory and prints the batch's
// name; the recipients file is copied from `recipients_path`, not held.
int DropBatch(const std::string& pickup_dir, const pickup::Manifest& manifest,
              std::string manifest_text, std::string template_bytes,
              const std::string& recipients_path) {
  std::vector<pickup::BatchFile> files(3);
  files[0].name = std::string(pickup::kManifestName);
  files[0].contents = std::move(manifest_text);
  files[1].name = manifest.template_file;
  files[1].contents = std::move(template_bytes);
  files[2].name = manifest.recipients_file;
  files[2].copy_from = recipients_path;
  auto name = pickup::InjectBatch(pickup_dir, files);
  if (!name.ok()) {
    std::fprintf(stderr, "sluice: inject: %s\n", std::string(name.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n", name->c_str());
  return 0;
}

}  // namespace

int RunInjectBatch(const Options& o, const config::Config& c) {
  if (!o.to.empty() || o.from_given || o.recipients_from_headers) {
    return Usage("inject --batch takes no --from, --to or -t: the manifest gives the envelope");
  }
  const std::string& manifest_path = o.batch;
  const size_t slash = manifest_path.rfind('/');
  const std::string source_dir = slash == std::string::npos ? "." : manifest_path.substr(0, slash);
  const pickup::BatchLimits limits = pickup::BatchLimitsFor(c);
  std::string manifest_text;
  if (!ReadFileInto(manifest_path, limits.max_manifest_size, manifest_text)) return 1;
  pickup::Manifest manifest;
  pickup::BatchError error;
  if (!pickup::ParseManifest(manifest_text, limits, manifest, error)) return Refuse(error);
  const std::string template_path = absl::StrCat(source_dir, "/", manifest.template_file);
  const std::string recipients_path = absl::StrCat(source_dir, "/", manifest.recipients_file);
  std::string template_bytes;
  if (!ReadFileInto(template_path, limits.max_template_size, template_bytes)) return 1;
  pickup::PreparedTemplate prepared;
  if (!pickup::PrepareTemplate(manifest.template_file, template_bytes, limits, prepared, error,
                               &manifest)) {
    return Refuse(error);
  }
  if (int code = CheckRecipients(recipients_path, prepared, manifest, limits); code != 0) {
    return code;
  }
  return DropBatch(c.pickup_dir, manifest, std::move(manifest_text), std::move(template_bytes),
                   recipients_path);
}

}  // namespace sluice::cli
