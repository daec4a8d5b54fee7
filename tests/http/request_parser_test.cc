// The HTTP/1.1 request parser (src/http/request_parser.cc): every request
// fed whole, byte by byte and split at every position; every limit at its
// edge and one past it; pipelining; the framing refusals.
#include "sluice/http/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/http/response.h"

namespace sluice::http {
namespace {

using namespace std::string_literals;

// Feeds `bytes` in pieces of `step` bytes (0: whole); returns the requests
// completed, taking each as it is ready (like the listener). Stops at an
// error, leaving it in `parser`.
std::vector<Request> FeedAll(RequestParser& parser, std::string_view bytes, size_t step = 0) {
  std::vector<Request> out;
  if (step == 0) step = bytes.size() == 0 ? 1 : bytes.size();
  std::string pending;
  for (size_t at = 0; at < bytes.size(); at += step) {
    pending.append(bytes.substr(at, step));
    while (!pending.empty()) {
      const size_t used = parser.Feed(pending);
      pending.erase(0, used);
      if (parser.failed()) return out;
      if (parser.has_request()) {
        out.push_back(parser.TakeRequest());
      } else {
        EXPECT_TRUE(pending.empty()) << "an incomplete request left bytes unconsumed";
        break;
      }
    }
  }
  return out;
}

const char kGet[] =
    "GET /api/admin/v1/messages?max=10&id=0ABC%20D+E HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Authorization: Bearer  abc \r\n"
    "\r\n";

TEST(RequestParser, ParsesAGet) {
  RequestParser p;
  auto reqs = FeedAll(p, kGet);
  ASSERT_FALSE(p.failed()) << p.error().message;
  ASSERT_EQ(reqs.size(), 1u);
  const Request& r = reqs[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/api/admin/v1/messages");
  EXPECT_EQ(r.raw_query, "max=10&id=0ABC%20D+E");
  ASSERT_NE(r.Param("id"), nullptr);
  EXPECT_EQ(*r.Param("id"), "0ABC D E");
  EXPECT_EQ(*r.Param("max"), "10");
  EXPECT_EQ(r.Param("nope"), nullptr);
  ASSERT_NE(r.FindHeader("authorization"), nullptr);
  EXPECT_EQ(*r.FindHeader("authorization"), "Bearer  abc");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.version_minor, 1);
}

TEST(RequestParser, EverySplitGivesTheSameRequest) {
  const std::string post =
      "POST /a%2Fb?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
      "Content-Length: 19\r\n\r\ndomain=ex.com&y=a+b";
  for (size_t step = 1; step <= post.size(); ++step) {
    RequestParser p;
    auto reqs = FeedAll(p, post, step);
    ASSERT_FALSE(p.failed()) << step << ": " << p.error().message;
    ASSERT_EQ(reqs.size(), 1u) << step;
    EXPECT_EQ(reqs[0].path, "/a/b");
    EXPECT_EQ(reqs[0].body, "domain=ex.com&y=a+b");
    EXPECT_EQ(*reqs[0].Param("domain"), "ex.com");
    EXPECT_EQ(*reqs[0].Param("y"), "a b");
    EXPECT_EQ(*reqs[0].Param("x"), "1");
  }
  // Split in two at every position.
  for (size_t cut = 0; cut <= post.size(); ++cut) {
    RequestParser p;
    std::string rest = post.substr(cut);
    size_t used = p.Feed(std::string_view(post).substr(0, cut));
    EXPECT_EQ(used, cut);
    used = p.Feed(rest);
    EXPECT_EQ(used, rest.size());
    ASSERT_TRUE(p.has_request()) << cut;
    EXPECT_EQ(p.TakeRequest().body, "domain=ex.com&y=a+b");
  }
}

TEST(RequestParser, PipelinedRequestsComeOutInOrder) {
  std::string bytes;
  for (int i = 0; i < 5; ++i) {
    bytes += "GET /r" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n";
  }
  bytes += "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  bytes += "GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  for (size_t step : {size_t{0}, size_t{1}, size_t{7}, size_t{64}}) {
    RequestParser p;
    auto reqs = FeedAll(p, bytes, step);
    ASSERT_FALSE(p.failed()) << p.error().message;
    ASSERT_EQ(reqs.size(), 7u) << step;
    for (int i = 0; i < 5; ++i) EXPECT_EQ(reqs[i].path, "/r" + std::to_string(i));
    EXPECT_EQ(reqs[5].body, "abc");
    EXPECT_EQ(reqs[6].path, "/last");
    EXPECT_FALSE(reqs[6].keep_alive);
  }
}

TEST(RequestParser, FeedStopsAtTheEndOfARequest) {
  RequestParser p;
  const std::string two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  const size_t used = p.Feed(two);
  EXPECT_EQ(used, two.size() / 2);
  EXPECT_TRUE(p.has_request());
  EXPECT_EQ(p.Feed("more"), 0u);  // nothing more until the request is taken
  EXPECT_EQ(p.TakeRequest().path, "/1");
  EXPECT_EQ(p.Feed(std::string_view(two).substr(used)), two.size() / 2);
  EXPECT_EQ(p.TakeRequest().path, "/2");
}

TEST(RequestParser, KeepAliveRules) {
  struct Case {
    const char* version;
    const char* connection;  // nullptr: none
    bool keep_alive;
  } cases[] = {
      {"HTTP/1.1", nullptr, true},      {"HTTP/1.1", "close", false},
      {"HTTP/1.1", "Keep-Alive", true}, {"HTTP/1.1", "keep-alive, CLOSE", false},
      {"HTTP/1.0", nullptr, false},     {"HTTP/1.0", "keep-alive", true},
      {"HTTP/1.0", "close", false},     {"HTTP/1.1", "Upgrade, close", false},
  };
  for (const Case& c : cases) {
    std::string req = std::string("GET / ") + c.version + "\r\nHost: h\r\n";
    if (c.connection != nullptr) req += std::string("Connection: ") + c.connection + "\r\n";
    req += "\r\n";
    RequestParser p;
    auto reqs = FeedAll(p, req);
    ASSERT_EQ(reqs.size(), 1u) << req;
    EXPECT_EQ(reqs[0].keep_alive, c.keep_alive) << req;
  }
  // HTTP/1.0 needs no Host.
  RequestParser p;
  EXPECT_EQ(FeedAll(p, "GET / HTTP/1.0\r\n\r\n").size(), 1u);
}

TEST(RequestParser, LeadingEmptyLinesAreSkippedUpToALimit) {
  std::string ok(kMaxLeadingEmptyLines * 2, ' ');
  for (size_t i = 0; i < ok.size(); i += 2) ok.replace(i, 2, "\r\n");
  RequestParser p;
  EXPECT_EQ(FeedAll(p, ok + kGet).size(), 1u);
  RequestParser q;
  FeedAll(q, "\r\n" + ok + kGet);
  ASSERT_TRUE(q.failed());
  EXPECT_EQ(q.error().status, 400);
}

struct Refusal {
  std::string bytes;
  int status;
  std::string says;  // a word of the message
};

TEST(RequestParser, RefusesWhatItMust) {
  const std::vector<Refusal> refusals = {
      {"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "chunked"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", 411, "chunked"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "both"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400,
       "twice"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,1\r\n\r\n", 400, "Content-Length"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
       "Content-Length"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n", 400, "obs-fold"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n", 400, "whitespace before the colon"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n", 400, "colon"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX\x01: 1\r\n\r\n", 400, "header name"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n", 400, "control"},
      {"GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", 400, "bare CR"},
      {"GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "bare LF"},
      {"GET / HTTP/1.1\r\nHost: h\0\r\n\r\n"s, 400, "NUL"},
      {"GET / HTTP/1.1\r\n\r\n", 400, "Host"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host given twice"},
      {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "HTTP/2.0"},
      {"GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400, "version"},
      {"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400, "malformed"},
      {"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "origin-form"},
      {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400, "malformed"},
      {"G@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "method"},
      {"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400, "percent"},
      {"GET /%4 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "percent"},
      {"GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400, "percent"},
      {"GET /?a=%G0 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "query"},
      {"GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "non-ASCII"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
       "Content-Length: 3\r\n\r\na=%",
       400, "form"},
  };
  for (const Refusal& r : refusals) {
    for (size_t step : {size_t{0}, size_t{1}}) {
      RequestParser p;
      auto reqs = FeedAll(p, r.bytes, step);
      EXPECT_TRUE(reqs.empty()) << r.bytes;
      ASSERT_TRUE(p.failed()) << r.bytes;
      EXPECT_EQ(p.error().status, r.status) << r.bytes << " -> " << p.error().message;
      EXPECT_NE(p.error().message.find(r.says), std::string::npos)
          << r.bytes << " -> " << p.error().message;
      EXPECT_EQ(p.Feed("GET / HTTP/1.1\r\n"), 0u);  // nothing after an error
    }
  }
}

std::string GetWithHeaders(size_t count, size_t value_size) {
  std::string req = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (size_t i = 1; i < count; ++i) {
    req += "X-" + std::to_string(i) + ": " + std::string(value_size, 'v') + "\r\n";
  }
  return req + "\r\n";
}

TEST(RequestParser, HeaderCountLimitAtItsEdge) {
  Limits limits;
  limits.max_headers = 10;
  RequestParser at(limits);
  EXPECT_EQ(FeedAll(at, GetWithHeaders(10, 1)).size(), 1u) << at.error().message;
  RequestParser over(limits);
  FeedAll(over, GetWithHeaders(11, 1));
  ASSERT_TRUE(over.failed());
  EXPECT_EQ(over.error().status, 431);
  EXPECT_NE(over.error().message.find("more than 10 header fields"), std::string::npos);
}

TEST(RequestParser, RequestLineLimitAtItsEdge) {
  Limits limits;
  limits.max_request_line = 100;
  // "GET /xxx HTTP/1.1\r\n" is 4 + path + 11 bytes.
  const std::string at = "GET /" + std::string(100 - 16, 'x') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  RequestParser p(limits);
  EXPECT_EQ(FeedAll(p, at).size(), 1u) << p.error().message;
  const std::string over = "GET /" + std::string(101 - 16, 'x') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t step : {size_t{0}, size_t{1}}) {
    RequestParser q(limits);
    FeedAll(q, over, step);
    ASSERT_TRUE(q.failed());
    EXPECT_EQ(q.error().status, 414);
  }
  // Refused as soon as the line is too long, without waiting for its end.
  RequestParser r(limits);
  EXPECT_EQ(r.Feed(std::string(101, 'G')), 101u);
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(r.error().status, 414);
}

TEST(RequestParser, HeadSizeLimitAtItsEdge) {
  Limits limits;
  limits.max_head_bytes = 200;
  const std::string base = GetWithHeaders(2, 0);  // "X-1: " with an empty value
  const std::string at = GetWithHeaders(2, 200 - base.size());
  ASSERT_EQ(at.size(), 200u);
  RequestParser p(limits);
  EXPECT_EQ(FeedAll(p, at).size(), 1u) << p.error().message;
  RequestParser q(limits);
  FeedAll(q, GetWithHeaders(2, 201 - base.size()), 1);
  ASSERT_TRUE(q.failed());
  EXPECT_EQ(q.error().status, 431);
  // A client that never ends its head is refused at the limit, not held.
  RequestParser r(limits);
  std::string endless = "GET / HTTP/1.1\r\nX: ";
  endless += std::string(300, 'a');
  EXPECT_LE(r.Feed(endless), 201u);
  EXPECT_TRUE(r.failed());
}

TEST(RequestParser, RequestSizeLimitAtItsEdge) {
  Limits limits;
  limits.max_request_bytes = 300;
  const std::string head_start = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ";
  auto post = [&](size_t body) {
    return head_start + std::to_string(body) + "\r\n\r\n" + std::string(body, 'b');
  };
  const size_t head = post(100).size() - 100;
  RequestParser p(limits);
  auto reqs = FeedAll(p, post(300 - head));
  ASSERT_EQ(reqs.size(), 1u) << p.error().message;
  EXPECT_EQ(reqs[0].body.size(), 300 - head);
  RequestParser q(limits);
  // Refused at the head: the body is never read.
  EXPECT_EQ(q.Feed(post(301 - head)), head);
  ASSERT_TRUE(q.failed());
  EXPECT_EQ(q.error().status, 413);
  EXPECT_NE(q.error().message.find("max_request_bytes"), std::string::npos);
}

TEST(RequestParser, OnePathTakesLargerRequests) {
  Limits limits;
  limits.max_request_bytes = 300;
  limits.large_path = "/api/inject/v1";
  limits.max_large_request_bytes = 1000;
  auto post = [](std::string_view path, size_t body) {
    return absl::StrCat("POST ", base::Av(path), " HTTP/1.1\r\nHost: h\r\nContent-Length: ", body,
                        "\r\n\r\n", std::string(body, 'b'));
  };
  RequestParser p(limits);
  auto reqs = FeedAll(p, post("/api/inject/v1", 900));
  ASSERT_EQ(reqs.size(), 1u) << p.error().message;
  EXPECT_EQ(reqs[0].body.size(), 900u);
  RequestParser q(limits);  // the same size elsewhere: the general limit
  q.Feed(post("/api/inject/v1x", 900));
  ASSERT_TRUE(q.failed());
  EXPECT_EQ(q.error().status, 413);
  EXPECT_NE(q.error().message.find("max_request_bytes = 300"), std::string::npos);
  RequestParser r(limits);  // past the path's own limit
  r.Feed(post("/api/inject/v1", 1000));
  ASSERT_TRUE(r.failed());
  EXPECT_EQ(r.error().status, 413);
  EXPECT_NE(r.error().message.find("max_inject_bytes = 1000"), std::string::npos)
      << r.error().message;
}

TEST(RequestParser, InRequestTellsAnIdleConnectionFromAStartedOne) {
  RequestParser p;
  EXPECT_FALSE(p.in_request());
  p.Feed("GE");
  EXPECT_TRUE(p.in_request());
  p.Feed("T / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\na");
  EXPECT_TRUE(p.in_request());
  p.Feed("b");
  ASSERT_TRUE(p.has_request());
  p.TakeRequest();
  EXPECT_FALSE(p.in_request());
}

TEST(PercentDecode, Cases) {
  EXPECT_EQ(PercentDecode("a%41%62+c", false), "aAb+c");
  EXPECT_EQ(PercentDecode("a%41%62+c", true), "aAb c");
  EXPECT_EQ(PercentDecode("%", false), std::nullopt);
  EXPECT_EQ(PercentDecode("%a", false), std::nullopt);
  EXPECT_EQ(PercentDecode("ab%", false), std::nullopt);
  EXPECT_EQ(PercentDecode("%00", false), std::nullopt);
  EXPECT_EQ(PercentDecode("%ff", false), "\xff");
  auto q = ParseQuery("a=1&&b&c=%20&=x");
  ASSERT_TRUE(q.has_value());
  ASSERT_EQ(q->size(), 4u);
  EXPECT_EQ((*q)[1].first, "b");
  EXPECT_EQ((*q)[1].second, "");
  EXPECT_EQ((*q)[2].second, " ");
  EXPECT_EQ((*q)[3].first, "");
}

TEST(RequestParser, ExpectContinueStopsBeforeTheBody) {
  const std::string head =
      "POST /api/inject/v1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n"
      "Expect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
  RequestParser p;
  EXPECT_EQ(p.Feed(head), head.size());
  ASSERT_TRUE(p.awaiting_continue());
  EXPECT_FALSE(p.has_request());
  EXPECT_EQ(p.head().path, "/api/inject/v1");
  ASSERT_NE(p.head().FindHeader("authorization"), nullptr);
  p.ContinueSent();
  EXPECT_FALSE(p.awaiting_continue());
  EXPECT_EQ(p.Feed("hello"), 5u);
  ASSERT_TRUE(p.has_request());
  EXPECT_EQ(p.TakeRequest().body, "hello");
  // The next request starts over: no Expect, nothing awaited.
  p.Feed("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n");
  EXPECT_FALSE(p.awaiting_continue());
}

TEST(RequestParser, ExpectContinueWithTheBodyAlreadySentIsJustRead) {
  RequestParser p;
  const std::string req =
      "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nxy";
  EXPECT_EQ(p.Feed(req), req.size());
  EXPECT_FALSE(p.awaiting_continue());
  EXPECT_TRUE(p.has_request());
  // Split after one body byte: no longer waiting either.
  RequestParser q;
  q.Feed(req.substr(0, req.size() - 1));
  EXPECT_FALSE(q.awaiting_continue());
  EXPECT_TRUE(q.in_request());
}

TEST(RequestParser, ExpectContinueIsIgnoredWithoutABodyOrFromHttp10) {
  RequestParser p;
  p.Feed("POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(p.awaiting_continue());
  EXPECT_TRUE(p.has_request());
  RequestParser q;
  q.Feed("POST /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_FALSE(q.awaiting_continue());
  EXPECT_TRUE(q.in_request());
}

TEST(RequestParser, AnUnknownExpectationIs417) {
  RequestParser p;
  p.Feed("POST /a HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\n");
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.error().status, 417);
  EXPECT_EQ(ReasonPhrase(417), "Expectation Failed");
}

TEST(RequestParser, A413NamesItsPathInTheHead) {
  Limits limits;
  limits.large_path = "/big";
  limits.max_large_request_bytes = 2048;
  RequestParser p(limits);
  p.Feed("POST /big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4096\r\n\r\n");
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.error().status, 413);
  EXPECT_EQ(p.head().path, "/big");
}

TEST(Response, SerializesWithLengthAndConnection) {
  Response r;
  r.status = 401;
  r.body = "{}";
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sluice\"\r\nX: injected");
  EXPECT_EQ(Serialize(r, true),
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            "Connection: keep-alive\r\nWWW-Authenticate: Bearer realm=\"sluice\"  X: "
            "injected\r\n\r\n{}");
  r.close = true;
  EXPECT_NE(Serialize(r, true).find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(Serialize(r, false, /*head=*/true).find("{}"), std::string::npos);
}

TEST(Response, JsonErrorEscapesEverything) {
  const Response e = JsonError(400, "bad \"x\"\\\n\x01\xc3\xa9");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.body,
            "{\"error\":\"bad \\\"x\\\"\\\\\\u000a\\u0001\\u00c3\\u00a9\",\"status\":400}\n");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(ReasonPhrase(299), "Unknown");
}

}  // namespace
}  // namespace sluice::http
