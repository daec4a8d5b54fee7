// Sluice's run-time configuration: every limit and knob with its default.
//
// Sources, later ones winning: built-in defaults (below), the TOML file given
// with --config, then command-line flags. `sluice serve` with neither runs on
// the defaults: listen on 127.0.0.1:2525, spool in ./var/spool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sluice/base/cidr.h"

namespace sluice::config {

// What to do with a bare CR or bare LF inside DATA. Only CRLF.CRLF ever ends
// DATA; this decides the fate of a message that contains a look-alike.
enum class BareLinefeedPolicy {
  kReject,  // read to the real end of DATA, then 550 5.6.11; nothing queued
};

struct Config {
  // [server]
  std::vector<std::string> listen = {"127.0.0.1:2525"};
  std::string hostname;  // empty: gethostname()
  int shards = 0;        // 0: one per online CPU
  std::string relay_from = "127.0.0.0/8,::1";
  size_t max_message_size = 50 * 1024 * 1024;  // bytes, advertised in SIZE
  size_t max_recipients = 1000;                // per transaction (452 4.5.3 past it)
  size_t max_line_length = 2048;               // command line, with CRLF (500 5.5.6)
  size_t max_data_line_length = 1000;          // body line, with CRLF (RFC 5321 4.5.3.1.6)
  size_t max_connections = 10000;              // per process; 421 4.7.0 past it
  size_t max_errors = 10;                      // bad commands before 421 and close
  uint32_t idle_timeout_s = 300;               // RFC 5321 4.5.3.2.7 server timeout
  uint32_t data_timeout_s = 600;               // no byte received within DATA
  uint32_t shutdown_grace_s = 30;              // SIGTERM: finish in-flight work
  BareLinefeedPolicy bare_linefeed = BareLinefeedPolicy::kReject;

  // [spool]
  std::string spool_dir = "./var/spool";
  uint64_t spool_min_free_bytes = 64ull * 1024 * 1024;  // 452 4.3.1 below this

  // [log]
  std::string log_file;  // empty: no accounting log

  // [pickup] (docs/PICKUP.md)
  std::string pickup_dir;                // empty: no pickup directory
  uint32_t pickup_scan_interval_s = 10;  // rescan of new/ besides inotify

  // Derived, filled by Finalize().
  base::NetworkSet relay_networks;
  std::vector<base::SocketAddress> listen_addresses;

  // Checks values and relations, fills the derived fields. Call once after
  // all sources are applied.
  absl::Status Finalize();
};

// Parses TOML text into `config` (over whatever it holds). An unknown key or
// a value of the wrong type or range is an error naming the key and line.
absl::Status ApplyToml(std::string_view toml_text, std::string_view source_name, Config& config);
absl::Status ApplyTomlFile(const std::string& path, Config& config);

}  // namespace sluice::config
