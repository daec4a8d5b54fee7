// [pickup]: the drop directory for batches (docs/PICKUP.md) and its limits.
// The group name is looked up at start-up (server.cc), not here.

#include <algorithm>

#include "checks.h"
#include "field_tables.h"
#include "tables.h"

namespace sluice::config {
namespace {

constexpr absl::string_view kPickupKeys[] = {"dir",
                                             "group",
                                             "scan_interval_s",
                                             "max_batch_recipients",
                                             "max_recipients_file_size",
                                             "feedback_id_sender"};

// Feedback-ID's last part (pickup::IsFeedbackIdPart): "" for none.
absl::Status CheckFeedbackIdSender(absl::string_view s) {
  const bool ok = s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
                    return c > 0x20 && c < 0x7f && c != ':';
                  });
  return ok ? absl::OkStatus()
            : absl::InvalidArgumentError(
                  "at most 128 printable ASCII characters without spaces or ':'");
}

}  // namespace

absl::Status ReadPickupTable(Walk& walk, absl::string_view name, const toml::table& t) {
  Config& c = walk.config();
  return walk.ForEach(t, name, [&](const Entry& e) {
    if (const IntField* field = FindIntField(name, e.name)) return walk.ReadIntField(*field, e);
    if (e.name == "dir") return walk.ReadString(e.dotted, e.node, CheckOptionalPath, &c.pickup_dir);
    if (e.name == "feedback_id_sender") {
      return walk.ReadString(e.dotted, e.node, CheckFeedbackIdSender, &c.pickup_feedback_id_sender);
    }
    if (e.name == "group") {
      return walk.ReadString(e.dotted, e.node, CheckOptionalPath, &c.pickup_group);
    }
    return walk.Unknown(name, e, kPickupKeys);
  });
}

}  // namespace sluice::config
