// Routing, authentication and the admin endpoints of the HTTP listener;
// see sluice/server/http_api.h and docs/HTTP.md.
#include "sluice/server/http_api.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "sluice/admin/shape.h"
#include "sluice/admin/show.h"
#include "sluice/base/clock.h"
#include "sluice/base/queue_id.h"
#include "sluice/base/strings.h"
#include "sluice/delivery/admin_state.h"
#include "sluice/server/control_socket.h"
#include "sluice/server/http_inject.h"
#include "sluice/server/metrics_text.h"
#include "sluice/server/status_page.h"
#include "sluice/tls/bearer_tokens.h"

namespace sluice::server {
namespace {

constexpr std::string_view kAdminPrefix = "/api/admin/v1/";

http::Response Error(int status, std::string_view message) {
  return http::JsonError(status, message);
}

Routed Answer(http::Response r) {
  Routed out;
  out.response = std::move(r);
  return out;
}

// One line of printable text: what may go into a control command.
bool IsPrintableLine(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// A domain as a control command takes it: no spaces or control characters.
std::optional<std::string> DomainParam(const http::Request& r) {
  const std::string* d = r.Param("domain");
  if (d == nullptr) return std::nullopt;
  std::string domain = admin::NormalDomain(*d);
  for (char c : domain) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return std::string();  // refused by the caller
  }
  return domain;
}

Routed Call(std::string line,
            std::function<admin::Outcome(const std::vector<admin::JsonValue>&)> m) {
  Routed out;
  out.admin.line = std::move(line);
  out.admin.merge = std::move(m);
  return out;
}

Routed Messages(const http::Request& r) {
  uint64_t max = kHttpJobsDefault;
  if (const std::string* m = r.Param("max"); m != nullptr) {
    if (!base::ParseUint64(*m, max) || max == 0 || max > ControlSocket::kMaxJobsListed) {
      return Answer(
          Error(400, absl::StrCat("max: a number from 1 to ", ControlSocket::kMaxJobsListed)));
    }
  }
  std::string line = absl::StrCat("messages ", max);
  if (const std::string* id = r.Param("id"); id != nullptr) {
    const auto parsed = base::QueueId::Parse(*id);
    if (!parsed) return Answer(Error(400, absl::StrCat("id: not a queue id: ", *id)));
    absl::StrAppend(&line, " ", parsed->ToString());
  }
  return Call(line, admin::MergeJobs);
}

// shape[?top=N]: `sluice queue shape --json` (admin/shape.h); N domains
// named (default 10, 0: every one), the rest summed as "other".
Routed ShapeCall(const http::Request& r) {
  uint64_t top = kHttpShapeTopDefault;
  if (const std::string* t = r.Param("top"); t != nullptr) {
    if (!base::ParseUint64(*t, top) || top > kHttpShapeTopMax) {
      return Answer(
          Error(400, absl::StrCat("top: a number from 0 (every domain) to ", kHttpShapeTopMax)));
    }
  }
  return Call(admin::ShapeCommand(), [top](const std::vector<admin::JsonValue>& replies) {
    return admin::MergeShape(replies, top);
  });
}

Routed Suspend(const http::Request& r, const std::string& domain) {
  uint64_t until_us = 0;  // until resumed
  const std::string* duration = r.Param("duration");
  const std::string* until = r.Param("until");
  if (duration != nullptr && until != nullptr) {
    return Answer(Error(400, "give duration or until, not both"));
  }
  const uint64_t now_us = base::WallMicros();
  if (duration != nullptr) {
    auto seconds = admin::ParseDurationSeconds(*duration);
    if (!seconds.ok())
      return Answer(Error(400, absl::StrCat("duration: ", seconds.status().message())));
    until_us = now_us + *seconds * 1000000;
  } else if (until != nullptr) {
    uint64_t seconds = 0;
    if (!base::ParseUint64(*until, seconds) || seconds > 100ull * 365 * 86400 * 100 ||
        seconds * 1000000 <= now_us) {
      return Answer(Error(400, "until: a time in the future, in seconds since 1970 (UTC)"));
    }
    until_us = seconds * 1000000;
  }
  const std::string* reason_param = r.Param("reason");
  const std::string reason = reason_param == nullptr ? "" : *reason_param;
  if (!IsPrintableLine(reason) || reason.size() > delivery::kMaxReasonSize) {
    return Answer(Error(
        400, absl::StrCat("reason: one line of at most ", delivery::kMaxReasonSize, " bytes")));
  }
  return Call(absl::StrCat("suspend ", domain, " ", until_us, " ", reason),
              [domain, until_us, reason](const std::vector<admin::JsonValue>& replies) {
                return admin::MergeSuspend(replies, domain, until_us, reason);
              });
}

Routed Selection(const http::Request& r, const std::string& verb,
                 const std::optional<std::string>& domain) {
  const std::string* id = r.Param("id");
  if ((id == nullptr) == !domain.has_value()) {
    return Answer(Error(400, absl::StrCat(verb, " needs exactly one of id or domain")));
  }
  if (id != nullptr) {
    const auto parsed = base::QueueId::Parse(*id);
    if (!parsed) return Answer(Error(400, absl::StrCat("id: not a queue id: ", *id)));
    const std::string text = parsed->ToString();
    return Call(absl::StrCat(verb, " id ", text),
                [verb, text](const std::vector<admin::JsonValue>& replies) {
                  return admin::MergeSelection(replies, verb, text, "");
                });
  }
  const std::string d = *domain;
  return Call(absl::StrCat(verb, " domain ", d),
              [verb, d](const std::vector<admin::JsonValue>& replies) {
                return admin::MergeSelection(replies, verb, "", d);
              });
}

// message?id=ID[&body=1][&recipient=ADDRESS]: one message whole
// (admin/show.h), its headers and body only with body=1, at most
// kHttpShowContentMax bytes of them.
Routed ShowCall(const http::Request& r) {
  const std::string* id = r.Param("id");
  if (id == nullptr) return Answer(Error(400, "message needs id="));
  const auto parsed = base::QueueId::Parse(*id);
  if (!parsed) return Answer(Error(400, absl::StrCat("id: not a queue id: ", id->substr(0, 64))));
  const std::string* body = r.Param("body");
  if (body != nullptr && *body != "0" && *body != "1") return Answer(Error(400, "body: 0 or 1"));
  const uint64_t content_max = body != nullptr && *body == "1" ? kHttpShowContentMax : 0;
  const std::string* rcpt = r.Param("recipient");
  std::string recipient = rcpt == nullptr ? "" : *rcpt;
  if (rcpt != nullptr &&
      (recipient.empty() || recipient.size() > admin::kShowRecipientFilterMax ||
       !IsPrintableLine(recipient) || recipient.front() == ' ' || recipient.back() == ' ')) {
    return Answer(Error(400, absl::StrCat("recipient: one address of at most ",
                                          admin::kShowRecipientFilterMax, " bytes")));
  }
  const std::string text = parsed->ToString();
  return Call(admin::ShowCommand(*parsed, content_max, recipient),
              [text, recipient](const std::vector<admin::JsonValue>& replies) {
                return admin::MergeShow(replies, text, recipient, base::WallMicros());
              });
}

// Which methods an admin endpoint takes: the reads GET (and HEAD), the
// actions POST.
bool IsAction(std::string_view name) {
  return name == "flush" || name == "suspend" || name == "resume" || name == "bounce" ||
         name == "delete" || name == "hold" || name == "release";
}

Routed Admin(const http::Request& r, std::string_view name) {
  const bool action = IsAction(name);
  const bool read = name == "queues" || name == "messages" || name == "stats" ||
                    name == "suspensions" || name == "shape" || name == "message";
  if (!action && !read) {
    return Answer(
        Error(404, absl::StrCat("no admin endpoint \"", base::Av(name),
                                "\" (queues, messages, message, stats, suspensions, shape, "
                                "flush, suspend, resume, bounce, delete, hold, release)")));
  }
  const bool get = r.method == "GET" || r.method == "HEAD";
  if (action != (r.method == "POST") || (read && !get)) {
    http::Response e = Error(405, absl::StrCat(base::Av(name), " takes ", action ? "POST" : "GET"));
    e.headers.emplace_back("Allow", action ? "POST" : "GET, HEAD");
    return Answer(std::move(e));
  }
  if (name == "queues") return Call("list", admin::MergeList);
  if (name == "stats") return Call("stats", admin::MergeStats);
  if (name == "suspensions") return Call("suspensions", admin::MergeSuspensions);
  if (name == "messages") return Messages(r);
  if (name == "shape") return ShapeCall(r);
  if (name == "message") return ShowCall(r);
  const std::optional<std::string> domain = DomainParam(r);
  if (domain && domain->empty()) return Answer(Error(400, "domain: not a domain name"));
  if (name == "flush") {
    const std::string d = domain.value_or("");
    return Call(absl::StrCat("flush ", d), [d](const std::vector<admin::JsonValue>& replies) {
      return admin::MergeFlush(replies, d);
    });
  }
  if (name != "bounce" && name != "delete" && name != "hold" && name != "release" && !domain) {
    return Answer(Error(400, absl::StrCat(base::Av(name), " needs domain=")));
  }
  if (name == "suspend") return Suspend(r, *domain);
  if (name == "resume") {
    const std::string d = *domain;
    return Call(absl::StrCat("resume ", d), [d](const std::vector<admin::JsonValue>& replies) {
      return admin::MergeResume(replies, d);
    });
  }
  return Selection(r, std::string(name), domain);
}

}  // namespace

std::optional<http::Response> CheckBearer(const http::Request& request,
                                          const tls::BearerTokenStore* tokens) {
  if (tokens == nullptr || !tokens->configured()) {
    return Error(403,
                 "the admin API is off: no http.tokens_file is configured ('sluice http-token "
                 "NAME' makes a token and the line for the file)");
  }
  const std::string* auth = request.FindHeader("authorization");
  std::string_view token;
  if (auth != nullptr && base::StartsWithIgnoreCase(*auth, "bearer ")) {
    token = std::string_view(*auth).substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  }
  if (!token.empty() && tokens->tokens()->Check(token).has_value()) return std::nullopt;
  http::Response e =
      Error(401, token.empty() ? "a bearer token is needed (Authorization: Bearer TOKEN)"
                               : "the bearer token is not valid");
  e.headers.emplace_back("WWW-Authenticate",
                         token.empty() ? "Bearer realm=\"sluice\""
                                       : "Bearer realm=\"sluice\", error=\"invalid_token\"");
  return e;
}

std::optional<http::Response> RefuseBeforeBody(const http::Request& head,
                                               const ApiContext& context) {
  if (head.path == "/metrics") {
    if (!context.metrics_require_token) return std::nullopt;
    return CheckBearer(head, context.tokens);
  }
  if (head.path == "/" || head.path == "/status") return std::nullopt;
  return CheckBearer(head, context.tokens);  // as Route: everything else needs a token
}

http::Response InjectBusy() {
  http::Response busy =
      Error(503,
            "too many injections waiting for the spool on this shard (http.max_inject_in_flight); "
            "retry");
  busy.headers.emplace_back("Retry-After", "1");
  return busy;
}

Routed Route(const http::Request& request, const ApiContext& context) {
  if (request.path == "/metrics") {
    if (context.metrics_require_token) {
      if (auto refused = CheckBearer(request, context.tokens)) return Answer(*std::move(refused));
    }
    if (request.method != "GET" && request.method != "HEAD") {
      http::Response e = Error(405, "/metrics takes GET");
      e.headers.emplace_back("Allow", "GET, HEAD");
      return Answer(std::move(e));
    }
    http::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (context.shard != nullptr) r.body = MetricsText(*context.shard);
    return Answer(std::move(r));
  }
  // The status page holds no data (its script asks /metrics and the admin
  // API with the operator's token), so it needs none.
  if (request.path == "/" || request.path == "/status") {
    if (request.method != "GET" && request.method != "HEAD") {
      http::Response e = Error(405, "the status page takes GET");
      e.headers.emplace_back("Allow", "GET, HEAD");
      return Answer(std::move(e));
    }
    return Answer(StatusPageResponse());
  }
  // Everything else needs a token, so nothing about it (not even whether a
  // path exists) is told to a stranger.
  if (auto refused = CheckBearer(request, context.tokens)) return Answer(*std::move(refused));
  std::string_view path = request.path;
  if (path == kInjectPath) {
    if (request.method != "POST") {
      http::Response e = Error(405, absl::StrCat(base::Av(kInjectPath), " takes POST"));
      e.headers.emplace_back("Allow", "POST");
      return Answer(std::move(e));
    }
    Routed out;
    out.inject = true;
    return out;
  }
  if (path.substr(0, kAdminPrefix.size()) == kAdminPrefix) {
    path.remove_prefix(kAdminPrefix.size());
    return Admin(request, path);
  }
  return Answer(Error(404, absl::StrCat("no such path: ", request.path.substr(0, 100))));
}

http::Response AdminResponse(AdminFanout::Replies replies, const AdminCall& call) {
  std::vector<std::string> texts;
  for (auto& r : replies) {
    if (!r.ok()) return Error(503, absl::StrCat("a shard did not answer: ", r.status().message()));
    texts.push_back(*std::move(r));
  }
  auto parsed = admin::ParseReplies(texts);
  if (!parsed.ok()) {
    return Error(absl::IsFailedPrecondition(parsed.status()) ? 409 : 502,
                 base::Sv(parsed.status().message()));
  }
  admin::Outcome o = call.merge(*parsed);
  if (!o.status.ok()) {
    const int code = absl::IsNotFound(o.status)      ? 404
                     : absl::IsUnavailable(o.status) ? 503
                     : absl::IsInternal(o.status)    ? 500
                                                     : 409;
    return Error(code, base::Sv(o.status.message()));
  }
  if (!o.warnings.empty() && !o.json.empty() && o.json.back() == '}') {
    o.json.pop_back();
    o.json += ",\"warnings\":[";
    for (size_t i = 0; i < o.warnings.size(); ++i) {
      absl::StrAppend(&o.json, i > 0 ? "," : "", http::JsonQuote(o.warnings[i]));
    }
    o.json += "]}";
  }
  http::Response out;
  out.body = std::move(o.json);
  out.body += '\n';
  return out;
}

}  // namespace sluice::server
