// Routing and authentication of the HTTP API (server/http_api.h): which
// requests need a token and what they get without one, the control command
// each admin endpoint becomes, what is refused before any shard is asked,
// and how the shards' replies become the response.
#include "sluice/server/http_api.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "sluice/admin/show.h"
#include "sluice/tls/bearer_tokens.h"

namespace sluice::server {
namespace {

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/sluice-http-api-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    std::ofstream(dir_ + "/tokens") << "# test\nops:" << tls::TokenDigestHex("good-token") << "\n";
    auto store = tls::BearerTokenStore::Create(dir_ + "/tokens");
    ASSERT_TRUE(store.ok()) << store.status();
    tokens_ = *std::move(store);
    context_.tokens = tokens_.get();
  }
  void TearDown() override {
    unlink((dir_ + "/tokens").c_str());
    rmdir(dir_.c_str());
  }

  static http::Request Make(std::string method, std::string target,
                            const char* token = "good-token") {
    http::RequestParser p;
    std::string bytes = method + " " + target + " HTTP/1.1\r\nHost: h\r\n";
    if (token != nullptr) bytes += std::string("Authorization: Bearer ") + token + "\r\n";
    bytes += "\r\n";
    p.Feed(bytes);
    EXPECT_TRUE(p.has_request()) << bytes << p.error().message;
    return p.TakeRequest();
  }

  std::string dir_;
  std::unique_ptr<tls::BearerTokenStore> tokens_;
  ApiContext context_;
};

TEST_F(HttpApiTest, StatusPageNeedsNoTokenAndForbidsOtherOrigins) {
  for (const char* path : {"/", "/status"}) {
    Routed r = Route(Make("GET", path, nullptr), context_);
    ASSERT_TRUE(r.response.has_value()) << path;
    EXPECT_EQ(r.response->status, 200) << path;
    EXPECT_EQ(r.response->content_type, "text/html; charset=utf-8");
    EXPECT_NE(r.response->body.find("<title>Sluice status</title>"), std::string::npos);
    std::string csp;
    for (const auto& [name, value] : r.response->headers) {
      if (name == "Content-Security-Policy") csp = value;
    }
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("http"), std::string::npos) << csp;  // no other origin named
  }
  // Nothing external in the page itself.
  Routed r = Route(Make("GET", "/", nullptr), context_);
  EXPECT_EQ(r.response->body.find("src="), std::string::npos);
  EXPECT_EQ(r.response->body.find("://"), std::string::npos);
  r = Route(Make("POST", "/", nullptr), context_);
  EXPECT_EQ(r.response->status, 405);
  // Any other path still needs the token.
  r = Route(Make("GET", "/status/x", nullptr), context_);
  EXPECT_EQ(r.response->status, 401);
}

TEST_F(HttpApiTest, MetricsNeedNoTokenUnlessAsked) {
  Routed r = Route(Make("GET", "/metrics", nullptr), context_);
  ASSERT_TRUE(r.response.has_value());
  EXPECT_EQ(r.response->status, 200);
  EXPECT_EQ(r.response->content_type, "text/plain; version=0.0.4; charset=utf-8");
  context_.metrics_require_token = true;
  r = Route(Make("GET", "/metrics", nullptr), context_);
  EXPECT_EQ(r.response->status, 401);
  r = Route(Make("GET", "/metrics"), context_);
  EXPECT_EQ(r.response->status, 200);
  EXPECT_EQ(Route(Make("POST", "/metrics"), context_).response->status, 405);
}

TEST_F(HttpApiTest, EverythingElseNeedsAToken) {
  // (GET / and /status are the status page: StatusPageNeedsNoToken... above.)
  for (const char* target :
       {"/api/admin/v1/queues", "/index.html", "/nope", "/api/admin/v1/nope"}) {
    Routed none = Route(Make("GET", target, nullptr), context_);
    ASSERT_TRUE(none.response.has_value()) << target;
    EXPECT_EQ(none.response->status, 401) << target;
    ASSERT_EQ(none.response->headers.size(), 1u);
    EXPECT_EQ(none.response->headers[0].first, "WWW-Authenticate");
    EXPECT_EQ(none.response->headers[0].second, "Bearer realm=\"sluice\"");
    Routed bad = Route(Make("GET", target, "bad-token"), context_);
    EXPECT_EQ(bad.response->status, 401);
    EXPECT_NE(bad.response->headers[0].second.find("invalid_token"), std::string::npos);
  }
  // Scheme case does not matter; the token's does.
  http::Request r = Make("GET", "/api/admin/v1/queues", nullptr);
  r.headers.push_back({"authorization", "bEaReR good-token"});
  EXPECT_FALSE(Route(r, context_).response.has_value());
  r.headers.back().value = "Bearer GOOD-TOKEN";
  EXPECT_EQ(Route(r, context_).response->status, 401);
  r.headers.back().value = "Basic Z29vZC10b2tlbg==";
  EXPECT_EQ(Route(r, context_).response->status, 401);
}

TEST_F(HttpApiTest, NoTokensFileMeansForbidden) {
  auto none = tls::BearerTokenStore::Create("");
  ASSERT_TRUE(none.ok());
  context_.tokens = none->get();
  Routed r = Route(Make("GET", "/api/admin/v1/queues"), context_);
  ASSERT_TRUE(r.response.has_value());
  EXPECT_EQ(r.response->status, 403);
  EXPECT_NE(r.response->body.find("http.tokens_file"), std::string::npos);
  context_.tokens = nullptr;
  EXPECT_EQ(Route(Make("GET", "/api/admin/v1/stats"), context_).response->status, 403);
  EXPECT_EQ(Route(Make("GET", "/metrics", nullptr), context_).response->status, 200);
}

TEST_F(HttpApiTest, EachEndpointBecomesItsControlCommand) {
  struct Case {
    const char* method;
    const char* target;
    const char* line;
  } cases[] = {
      {"GET", "/api/admin/v1/queues", "list"},
      {"HEAD", "/api/admin/v1/queues", "list"},
      {"GET", "/api/admin/v1/stats", "stats"},
      {"GET", "/api/admin/v1/suspensions", "suspensions"},
      {"GET", "/api/admin/v1/messages", "messages 1000"},
      {"GET", "/api/admin/v1/messages?max=5&id=0ABCDEFGHJKMN", "messages 5 0ABCDEFGHJKMN"},
      {"POST", "/api/admin/v1/flush", "flush "},
      {"POST", "/api/admin/v1/flush?domain=Example.COM.", "flush example.com"},
      {"POST", "/api/admin/v1/suspend?domain=a.test&reason=disk+full",
       "suspend a.test 0 disk full"},
      {"POST", "/api/admin/v1/resume?domain=a.test", "resume a.test"},
      {"POST", "/api/admin/v1/bounce?domain=a.test", "bounce domain a.test"},
      {"POST", "/api/admin/v1/hold?id=0ABCDEFGHJKMN", "hold id 0ABCDEFGHJKMN"},
      {"POST", "/api/admin/v1/release?domain=a.test", "release domain a.test"},
      {"POST", "/api/admin/v1/delete?id=0ABCDEFGHJKMN", "delete id 0ABCDEFGHJKMN"},
      {"GET", "/api/admin/v1/message?id=0ABCDEFGHJKMN", "show 0ABCDEFGHJKMN 0"},
      {"HEAD", "/api/admin/v1/message?id=0abcdefghjkmn&body=0", "show 0ABCDEFGHJKMN 0"},
      {"GET", "/api/admin/v1/message?id=0ABCDEFGHJKMN&body=1&recipient=Ann+Lee%40x.test",
       "show 0ABCDEFGHJKMN 1048576 Ann Lee@x.test"},
  };
  for (const Case& c : cases) {
    Routed r = Route(Make(c.method, c.target), context_);
    EXPECT_FALSE(r.response.has_value()) << c.target << ": " << r.response->body;
    EXPECT_EQ(r.admin.line, c.line) << c.target;
    EXPECT_TRUE(static_cast<bool>(r.admin.merge)) << c.target;
  }
  // A duration becomes an end time in wall-clock microseconds.
  Routed s = Route(Make("POST", "/api/admin/v1/suspend?domain=a.test&duration=2h"), context_);
  ASSERT_FALSE(s.response.has_value());
  EXPECT_EQ(s.admin.line.substr(0, 15), "suspend a.test ");
  EXPECT_NE(s.admin.line.substr(15), "0 ");
}

TEST_F(HttpApiTest, BadAdminRequestsAreRefusedBeforeAnyShardIsAsked) {
  struct Case {
    const char* method;
    const char* target;
    int status;
  } cases[] = {
      {"POST", "/api/admin/v1/queues", 405},
      {"GET", "/api/admin/v1/flush", 405},
      {"GET", "/api/admin/v1/nothing", 404},
      {"GET", "/elsewhere", 404},
      {"GET", "/api/admin/v1/messages?max=0", 400},
      {"GET", "/api/admin/v1/messages?max=x", 400},
      {"GET", "/api/admin/v1/messages?max=200001", 400},
      {"GET", "/api/admin/v1/messages?id=nope", 400},
      {"POST", "/api/admin/v1/suspend", 400},
      {"POST", "/api/admin/v1/suspend?domain=a.test&duration=2w", 400},
      {"POST", "/api/admin/v1/suspend?domain=a.test&duration=1h&until=9999999999", 400},
      {"POST", "/api/admin/v1/suspend?domain=a.test&until=1", 400},
      // No second command can ride along in a parameter.
      {"POST", "/api/admin/v1/suspend?domain=a.test&reason=x%0Alist", 400},
      {"POST", "/api/admin/v1/resume?domain=a.test%0Astats", 400},
      {"POST", "/api/admin/v1/flush?domain=a%20b", 400},
      {"POST", "/api/admin/v1/bounce", 400},
      {"POST", "/api/admin/v1/bounce?domain=a.test&id=0ABCDEFGHJKMN", 400},
      {"POST", "/api/admin/v1/hold?id=not-an-id", 400},
      {"POST", "/api/admin/v1/resume", 400},
      {"GET", "/api/admin/v1/message", 400},
      {"GET", "/api/admin/v1/message?id=nope", 400},
      {"GET", "/api/admin/v1/message?id=0ABCDEFGHJKMN&body=yes", 400},
      {"GET", "/api/admin/v1/message?id=0ABCDEFGHJKMN&recipient=", 400},
      {"GET", "/api/admin/v1/message?id=0ABCDEFGHJKMN&recipient=a%0Alist", 400},
      {"GET", "/api/admin/v1/message?id=0ABCDEFGHJKMN&recipient=%20a", 400},
      {"POST", "/api/admin/v1/message?id=0ABCDEFGHJKMN", 405},
  };
  for (const Case& c : cases) {
    Routed r = Route(Make(c.method, c.target), context_);
    ASSERT_TRUE(r.response.has_value()) << c.target << " -> " << r.admin.line;
    EXPECT_EQ(r.response->status, c.status) << c.target << ": " << r.response->body;
    EXPECT_EQ(r.response->body.rfind("{\"error\":", 0), 0u) << r.response->body;
  }
}

TEST(HttpAdminResponse, MergesRepliesAndMapsRefusals) {
  AdminCall list{"list", admin::MergeList};
  http::Response ok = AdminResponse({std::string("[{\"domain\":\"b\"}]"), std::string("[]")}, list);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "[\n{\"domain\":\"b\"}\n]\n");

  http::Response down = AdminResponse(
      {std::string("[]"), absl::UnavailableError("shard 1: Connection refused")}, list);
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("shard 1"), std::string::npos);

  http::Response disabled =
      AdminResponse({std::string("{\"error\":\"delivery is disabled (--no-delivery)\"}")}, list);
  EXPECT_EQ(disabled.status, 409);

  AdminCall flush{"flush x.test", [](const std::vector<admin::JsonValue>& r) {
                    return admin::MergeFlush(r, "x.test");
                  }};
  http::Response none = AdminResponse({std::string("{\"domains\":0}")}, flush);
  EXPECT_EQ(none.status, 404);
  EXPECT_NE(none.body.find("no mail queued for x.test"), std::string::npos);

  AdminCall suspend{"suspend x.test 0 ", [](const std::vector<admin::JsonValue>& r) {
                      return admin::MergeSuspend(r, "x.test", 0, "");
                    }};
  http::Response warned =
      AdminResponse({std::string("{\"owner\":true,\"recipients\":0,\"saved\":true}")}, suspend);
  EXPECT_EQ(warned.status, 200);

  AdminCall show{"show 0ABCDEFGHJKMN 0", [](const std::vector<admin::JsonValue>& r) {
                   return admin::MergeShow(r, "0ABCDEFGHJKMN", "", 0);
                 }};
  http::Response busy =
      AdminResponse({std::string("{\"shard\":0,\"home\":true,\"busy\":true,\"jobs\":[]}")}, show);
  EXPECT_EQ(busy.status, 503);
  http::Response unreadable = AdminResponse(
      {std::string("{\"shard\":0,\"home\":true,\"read_error\":\"x\",\"jobs\":[]}")}, show);
  EXPECT_EQ(unreadable.status, 500);
  http::Response unknown =
      AdminResponse({std::string("{\"shard\":0,\"home\":false,\"jobs\":[]}")}, show);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(warned.body,
            "{\"domain\":\"x.test\",\"until_us\":0,\"reason\":\"\",\"recipients\":0,"
            "\"warnings\":[\"no mail queued for x.test; suspended anyway\"]}\n");
}

}  // namespace
}  // namespace sluice::server
