// What the HTTP listener (server/http_listener.h) serves, request by
// request: authentication, GET /metrics, the status page (GET /,
// server/status_page.h), and the admin API under
// /api/admin/v1/ (docs/HTTP.md), which mirrors `sluice queue`.
//
// An admin request becomes one control command (server/control_socket.h)
// that the listener asks every shard (server/admin_fanout.h) and a merge
// of the replies (admin/merge.h): the same documents `sluice queue VERB
// --json` prints.
//
// What it trusts: nothing in the request. Everything that goes into a
// control line (domain, id, reason) is checked to be one line of printable
// text first, so no request can smuggle a second command.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sluice/admin/merge.h"
#include "sluice/http/request_parser.h"
#include "sluice/http/response.h"
#include "sluice/server/admin_fanout.h"

namespace sluice::tls {
class BearerTokenStore;
}  // namespace sluice::tls

namespace sluice::server {

class Shard;

// Jobs GET /api/admin/v1/messages lists per shard without ?max= (the reply
// is built in memory on every shard's thread, about 150 bytes a job).
inline constexpr uint64_t kHttpJobsDefault = 1000;
// Domains GET /api/admin/v1/shape names without ?top= (as `sluice queue
// shape`), and at most with it (0 names every one: the document is then as
// large as the queue's domain count, like /queues).
inline constexpr uint64_t kHttpShapeTopDefault = 10;
inline constexpr uint64_t kHttpShapeTopMax = 100'000;
// Bytes of a message's headers and body GET /api/admin/v1/message?body=1
// shows ("content", with "truncated" past it): enough to read any ordinary
// message, and the reply crosses a control socket and is held twice in
// memory (JSON-escaped) on the asking shard; the whole message is
// `sluice queue show ID --body`.
inline constexpr uint64_t kHttpShowContentMax = 1u << 20;

// An admin request: the line every shard is asked, and how their replies
// become the answer.
struct AdminCall {
  std::string line;
  std::function<admin::Outcome(const std::vector<admin::JsonValue>&)> merge;
};

// Either an answer now, or an admin call to fan out.
struct Routed {
  std::optional<http::Response> response;
  AdminCall admin;
  bool inject = false;  // POST /api/inject/v1, authorized: the listener spools it
};

struct ApiContext {
  Shard* shard = nullptr;  // for /metrics; null in tests
  bool metrics_require_token = false;
  // Null or not configured (no http.tokens_file): the admin API answers 403.
  const tls::BearerTokenStore* tokens = nullptr;
};

Routed Route(const http::Request& request, const ApiContext& context);

// The answer to a finished fan-out: 200 with the merged document (plus
// "warnings" when there are any), 404/409 for what the command refused (the
// CLI's message), 503 when a shard did not answer (or had no helper
// free), 500 when a record could not be read.
http::Response AdminResponse(AdminFanout::Replies replies, const AdminCall& call);

// A request whose client sent Expect: 100-continue, judged on its head
// alone before the body is read: nullopt to send 100 Continue, else the
// final status (401/403 without a good token where one is needed).
std::optional<http::Response> RefuseBeforeBody(const http::Request& head,
                                               const ApiContext& context);

// The 503 (with Retry-After) for an injection past http.max_inject_in_flight.
http::Response InjectBusy();

// Checks "Authorization: Bearer TOKEN": nullopt when it is good, else the
// 401 (WWW-Authenticate: Bearer) or 403 (no tokens configured) to send.
std::optional<http::Response> CheckBearer(const http::Request& request,
                                          const tls::BearerTokenStore* tokens);

}  // namespace sluice::server
