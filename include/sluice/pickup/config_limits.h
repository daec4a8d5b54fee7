// What a dropped file and a batch are checked against, from the
// configuration: the daemon's ingester, the HTTP injection API and
// `sluice inject` / `sluice sendmail` all check the same.
#pragma once

#include "sluice/config/config.h"
#include "sluice/pickup/batch.h"
#include "sluice/pickup/message_parser.h"

namespace sluice::pickup {

Limits MessageLimitsFor(const config::Config& config);
BatchLimits BatchLimitsFor(const config::Config& config);

}  // namespace sluice::pickup
