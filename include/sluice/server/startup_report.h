// What `sluice serve` tells the operator when it starts: the `ready` line
// (listeners, accounting log, whether delivery is live and through which
// resolvers and routes, who may relay, shards, spool, pickup) and the
// warnings about a configuration that works but is likely a mistake.
// Pure text from the configuration, plus a read of /etc/resolv.conf for the
// resolvers c-ares will use when delivery.dns is empty.
#pragma once

#include <string>
#include <vector>

#include "sluice/config/config.h"

namespace sluice::server {

// "dns 10.0.0.2:53 10.0.0.3:53" from delivery.dns, or "dns /etc/resolv.conf
// (10.0.0.2 ...)" read from the file c-ares reads.
std::string ResolverSummary(const config::Config& config);

// The line after "sluice: ready: ", without the newline. The configuration
// must be finalized.
std::string ReadyLine(const config::Config& config);

// Settings that are legal but likely wrong, one sentence each, without the
// "warning: " prefix: a host name that is not fully qualified (it is the
// greeting and the outbound EHLO name, and receivers reject a single label).
std::vector<std::string> ConfigWarnings(const config::Config& config);

}  // namespace sluice::server
