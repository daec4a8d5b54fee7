// `sluice check-config`'s look at the folders the daemon writes: the spool,
// the accounting log's folder and the pickup directory (and its tmp/ new/
// bad/). Each must exist and be writable by the service user, or not exist
// yet under a folder the service user can write (serve creates it).
//
// Trusts: stat() and the user database. Judges by the mode bits and the
// user's groups (getgrouplist), as the kernel does without ACLs; ACLs,
// read-only mounts and the search permission of the folders above are not
// looked at. Root may write anywhere.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/config/config.h"

namespace sluice::cli {

struct ServiceUser {
  std::string name;
  unsigned uid = 0;
  std::vector<unsigned> gids;  // primary first
};

// `name` from the user database, or the user running this command when
// `name` is empty (its effective ids and supplementary groups).
absl::StatusOr<ServiceUser> LookUpServiceUser(const std::string& name);

// One problem per folder, as "spool.dir /x: ..."; empty when all is well.
std::vector<std::string> CheckFolders(const config::Config& config, const ServiceUser& user);

}  // namespace sluice::cli
