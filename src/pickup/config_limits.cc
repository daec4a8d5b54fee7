// The pickup limits from the configuration (config_limits.h).
#include "sluice/pickup/config_limits.h"

namespace sluice::pickup {

Limits MessageLimitsFor(const config::Config& config) {
  Limits limits;
  limits.max_message_size = config.max_message_size;
  limits.max_line_length = config.max_data_line_length;
  limits.max_recipients = config.max_recipients;
  limits.max_hops = config.max_hops;
  limits.require_from = config.require_from;
  return limits;
}

BatchLimits BatchLimitsFor(const config::Config& config) {
  BatchLimits limits;
  limits.max_template_size = config.max_message_size;
  limits.max_message_size = config.max_message_size;
  limits.max_line_length = config.max_data_line_length;
  limits.max_recipients = config.pickup_max_batch_recipients;
  limits.max_recipients_file_size = config.pickup_max_recipients_file_size;
  limits.require_from = config.require_from;
  limits.feedback_id_sender = config.pickup_feedback_id_sender;
  return limits;
}

}  // namespace sluice::pickup
