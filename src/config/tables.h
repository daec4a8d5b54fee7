// The table readers: one function per TOML table, each in its own file
// (<name>_table.cc), listed by name in the registry at the top of config.cc.
// A reader gets the table (or, for [[name]], the array of tables) already
// checked to be one, reads its keys through Walk (toml_walk.h), and writes
// into walk.config(). Adding a table is one new file with one function
// declared here, and one line in config.cc's kTableReaders.
// Private to src/config.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "toml_walk.h"

namespace sluice::config {

// Reads [name]. `name` is the table's name, for readers that serve several.
using ReadTableFn = absl::Status (*)(Walk& walk, absl::string_view name, const toml::table& t);
// Reads [[name]]: every entry; the file's list replaces the one before.
using ReadArrayFn = absl::Status (*)(Walk& walk, const toml::array& entries);

struct TableReader {
  absl::string_view name;
  ReadTableFn read_table;  // for [name]; null for an array of tables
  ReadArrayFn read_array;  // for [[name]]; null for a table
};

absl::Status ReadServerTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadSpoolTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadLogTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadPickupTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadDeliveryTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadRetryTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadAdminTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadShapingTables(Walk& walk, const toml::array& entries);
absl::Status ReadRouteTables(Walk& walk, const toml::array& entries);
absl::Status ReadTlsTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadAuthTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadDkimTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadHttpTable(Walk& walk, absl::string_view name, const toml::table& t);
absl::Status ReadWebhookTables(Walk& walk, const toml::array& entries);  // webhook_config.cc

}  // namespace sluice::config
