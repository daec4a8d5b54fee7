// What a batch's manifest adds for bulk senders (pickup/bulk_headers.h):
// List-Unsubscribe / List-Unsubscribe-Post from [unsubscribe], Feedback-ID,
// the {{name|url}} filter that encodes each recipient's values, the
// template's From count, and that no value can add a header field.
#include "sluice/pickup/bulk_headers.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/merge/template.h"
#include "sluice/pickup/batch.h"

namespace sluice::pickup {
namespace {

// ---------------------------------------------------------------------------
// The url filter of merge templates

TEST(UrlFilter, EncodesEverythingButUnreserved) {
  std::string out;
  merge::AppendUrlEncoded(out, "a.B-c_d~9");
  EXPECT_EQ(out, "a.B-c_d~9");
  out.clear();
  merge::AppendUrlEncoded(out, "x@y.z&c=1/2?# <>,\"%+\r\n\xc3\xa9");
  EXPECT_EQ(out, "x%40y.z%26c%3D1%2F2%3F%23%20%3C%3E%2C%22%25%2B%0D%0A%C3%A9");
  EXPECT_EQ(merge::UrlEncodedSize("x@y.z&c=1/2?# <>,\"%+\r\n\xc3\xa9"), out.size());
  EXPECT_EQ(merge::UrlEncodedSize(""), 0u);
}

TEST(UrlFilter, CompilesRendersAndCounts) {
  merge::CompiledTemplate t;
  merge::TemplateError e;
  ASSERT_TRUE(
      merge::Compile("L: <https://x/u?e={{email|url}}&n={{ name | url }}>\r\n"
                     "Subject: {{name}}\r\n\r\n{{email}}\r\n",
                     t, e))
      << e.ToString();
  EXPECT_EQ(t.fields, (std::vector<std::string>{"email", "name"}));
  EXPECT_EQ(t.uses, (std::vector<uint32_t>{2, 2}));
  EXPECT_EQ(t.url_uses, (std::vector<uint32_t>{1, 1}));
  const std::vector<std::string> values = {"a+b@x.org", "A> B"};
  const std::string out = merge::Render(t, values);
  EXPECT_EQ(out,
            "L: <https://x/u?e=a%2Bb%40x.org&n=A%3E%20B>\r\nSubject: A> B\r\n\r\na+b@x.org\r\n");
  const std::vector<std::string_view> views(values.begin(), values.end());
  EXPECT_EQ(merge::RenderedSize(t, views), out.size());
  EXPECT_EQ(merge::LongestMergedLine(t, views),
            std::string("L: <https://x/u?e=a%2Bb%40x.org&n=A%3E%20B>\r\n").size());
  // The stored form compiles again with the same fields (the delivery side).
  EXPECT_TRUE(merge::CompileStored("S: {{a|url}}\r\n\r\n{{a}}\r\n", {"a"}).ok());
}

TEST(UrlFilter, UnknownFilterIsAnError) {
  merge::CompiledTemplate t;
  merge::TemplateError e;
  EXPECT_FALSE(merge::Compile("S: {{a|html}}\r\n\r\nx\r\n", t, e));
  EXPECT_EQ(e.line, 1u);
  EXPECT_EQ(e.column, 4u);
  EXPECT_NE(e.reason.find("unknown filter 'html'"), std::string::npos) << e.reason;
  EXPECT_FALSE(merge::Compile("S: {{a|}}\r\n\r\nx\r\n", t, e));
  EXPECT_FALSE(merge::Compile("S: {{a|url\r\n\r\nx\r\n", t, e));
  EXPECT_FALSE(merge::Compile("S: {{|url}}\r\n\r\nx\r\n", t, e));
}

// ---------------------------------------------------------------------------
// URL templates

std::string Uri(std::string_view text, UriKind kind = UriKind::kHttp, bool* https = nullptr) {
  std::string out, why;
  bool h = false;
  EXPECT_TRUE(ParseUriTemplate(text, kind, out, h, why)) << text << ": " << why;
  if (https != nullptr) *https = h;
  return out;
}

std::string UriFails(std::string_view text, UriKind kind = UriKind::kHttp) {
  std::string out, why;
  bool h = false;
  EXPECT_FALSE(ParseUriTemplate(text, kind, out, h, why)) << text;
  EXPECT_FALSE(why.empty());
  return why;
}

TEST(UriTemplate, HttpsRewritesPlaceholders) {
  bool https = false;
  EXPECT_EQ(Uri("https://example.com/u?r={{email}}&c={{ campaign_id }}", UriKind::kHttp, &https),
            "https://example.com/u?r={{email|url}}&c={{campaign_id|url}}");
  EXPECT_TRUE(https);
  EXPECT_EQ(Uri("HTTP://Example.com:8443/a/{{id}}#x", UriKind::kHttp, &https),
            "http://Example.com:8443/a/{{id|url}}#x");
  EXPECT_FALSE(https);
  EXPECT_EQ(Uri("https://[::1]/u%2Cv"), "https://[::1]/u%2Cv");
  EXPECT_EQ(Uri("https://e.com"), "https://e.com");
}

TEST(UriTemplate, HttpRefusals) {
  EXPECT_NE(UriFails("ftp://e.com/").find("https://"), std::string::npos);
  EXPECT_NE(UriFails("//e.com/").find("https://"), std::string::npos);
  EXPECT_NE(UriFails("https:///path").find("bad host"), std::string::npos);
  EXPECT_NE(UriFails("https://{{host}}.e.com/").find("bad host"), std::string::npos);
  EXPECT_NE(UriFails("https://user@e.com/").find("bad host"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/a b").find("' '"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/a>b").find("'>'"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/a<b").find("'<'"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/a\"b").find("'\"'"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/a,b").find("%2C"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/a\r\nX-Evil: 1").find("control"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/\xc3\xa9").find("non-ASCII"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/%zz").find("hex"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/%4").find("hex"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/{{a").find("placeholder"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/{{a|url}}").find("placeholder"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/{{}}").find("placeholder"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/{x}").find("'{'"), std::string::npos);
  EXPECT_NE(UriFails("https://e.com/}}").find("'}'"), std::string::npos);
  EXPECT_NE(UriFails("").find("empty"), std::string::npos);
  const std::string path(kMaxUnsubscribeUrlLength - 14, 'a');
  EXPECT_EQ(Uri("https://e.com/" + path).size(), kMaxUnsubscribeUrlLength);
  EXPECT_NE(UriFails("https://e.com/a" + path).find("longer than"), std::string::npos);
}

TEST(UriTemplate, Mailto) {
  EXPECT_EQ(Uri("unsub+{{id}}@example.com", UriKind::kMailto),
            "mailto:unsub+{{id|url}}@example.com");
  EXPECT_EQ(Uri("MAILTO:u@example.com?subject=unsubscribe%20{{id}}", UriKind::kMailto),
            "mailto:u@example.com?subject=unsubscribe%20{{id|url}}");
  EXPECT_NE(UriFails("example.com", UriKind::kMailto).find("local@domain"), std::string::npos);
  EXPECT_NE(UriFails("a@b@example.com", UriKind::kMailto).find("%40"), std::string::npos);
  EXPECT_NE(UriFails("@example.com", UriKind::kMailto).find("local part"), std::string::npos);
  EXPECT_NE(UriFails("u@{{d}}", UriKind::kMailto).find("domain"), std::string::npos);
  EXPECT_NE(UriFails("u@", UriKind::kMailto).find("domain"), std::string::npos);
  EXPECT_NE(UriFails("u>x@e.com", UriKind::kMailto).find("'>'"), std::string::npos);
}

TEST(BulkHeaderFields, Lines) {
  BulkHeaders h;
  EXPECT_EQ(BulkHeaderFields(h), "");
  h.url = "https://e.com/u?r={{email|url}}";
  h.one_click = true;
  EXPECT_EQ(BulkHeaderFields(h),
            "List-Unsubscribe: <https://e.com/u?r={{email|url}}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
  h.mailto = "mailto:u@e.com";
  h.feedback_id = "c{{1}}:t:esp";  // a literal "{{" is escaped for the template
  EXPECT_EQ(BulkHeaderFields(h),
            "List-Unsubscribe: <https://e.com/u?r={{email|url}}>,\r\n <mailto:u@e.com>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            "Feedback-ID: c{{{{1}}:t:esp\r\n");
  EXPECT_TRUE(IsFeedbackIdPart("esp-1"));
  EXPECT_FALSE(IsFeedbackIdPart("a:b"));
  EXPECT_FALSE(IsFeedbackIdPart("a b"));
  EXPECT_FALSE(IsFeedbackIdPart(""));
  EXPECT_FALSE(IsFeedbackIdPart(std::string(129, 'a')));
}

// ---------------------------------------------------------------------------
// The manifest

const char kBase[] =
    "sender = \"news@example.com\"\ntemplate = \"t.eml\"\nrecipients = \"r.csv\"\n";

Manifest MustParse(const std::string& text, const BatchLimits& limits = BatchLimits{}) {
  Manifest m;
  BatchError e;
  EXPECT_TRUE(ParseManifest(text, limits, m, e)) << text << "\n" << e.ToString();
  return m;
}

BatchError MustRefuse(const std::string& text, const BatchLimits& limits = BatchLimits{}) {
  Manifest m;
  BatchError e;
  EXPECT_FALSE(ParseManifest(text, limits, m, e)) << text;
  EXPECT_EQ(e.file, "manifest.toml");
  return e;
}

TEST(ManifestUnsubscribe, OneClickDefaults) {
  Manifest m = MustParse(std::string(kBase) +
                         "[unsubscribe]\nurl = \"https://e.com/u?r={{email}}\"\n"
                         "mailto = \"unsub+{{id}}@e.com\"\n");
  EXPECT_EQ(m.bulk.url, "https://e.com/u?r={{email|url}}");
  EXPECT_EQ(m.bulk.mailto, "mailto:unsub+{{id|url}}@e.com");
  EXPECT_TRUE(m.bulk.one_click);  // https: one-click unless said otherwise
  m = MustParse(std::string(kBase) +
                "[unsubscribe]\nurl = \"https://e.com/u\"\none_click = false\n");
  EXPECT_FALSE(m.bulk.one_click);
  m = MustParse(std::string(kBase) + "[unsubscribe]\nurl = \"http://e.com/u\"\n");
  EXPECT_FALSE(m.bulk.one_click);  // http: never one-click
  m = MustParse(std::string(kBase) + "[unsubscribe]\nmailto = \"u@e.com\"\n");
  EXPECT_FALSE(m.bulk.one_click);
  EXPECT_EQ(m.bulk.url, "");
  m = MustParse(std::string(kBase) + "unsubscribe.url = \"https://e.com/\"\n");  // dotted keys
  EXPECT_TRUE(m.bulk.one_click);
}

TEST(ManifestUnsubscribe, Refusals) {
  const std::string base = kBase;
  BatchError e = MustRefuse(base + "[unsubscribe]\nurl = \"http://e.com/u\"\none_click = true\n");
  EXPECT_EQ(e.line, 6u);
  EXPECT_NE(e.reason.find("RFC 8058 requires https"), std::string::npos) << e.reason;
  e = MustRefuse(base + "[unsubscribe]\nmailto = \"u@e.com\"\none_click = true\n");
  EXPECT_NE(e.reason.find("needs an https url"), std::string::npos) << e.reason;
  e = MustRefuse(base + "[unsubscribe]\nurl = \"https://e.com/\"\nlink = \"x\"\n");
  EXPECT_EQ(e.line, 6u);
  EXPECT_NE(e.reason.find("unknown key 'unsubscribe.link'"), std::string::npos) << e.reason;
  e = MustRefuse(base + "[unsubscribe]\n");
  EXPECT_NE(e.reason.find("needs url or mailto"), std::string::npos) << e.reason;
  e = MustRefuse(base + "[unsubscribe]\nurl = 5\n");
  EXPECT_NE(e.reason.find("must be a string"), std::string::npos) << e.reason;
  e = MustRefuse(base + "[unsubscribe]\nurl = \"https://e.com/\"\none_click = \"yes\"\n");
  EXPECT_NE(e.reason.find("true or false"), std::string::npos) << e.reason;
  e = MustRefuse(base + "unsubscribe = \"https://e.com/\"\n");
  EXPECT_NE(e.reason.find("must be a table"), std::string::npos) << e.reason;
  e = MustRefuse(base + "[unsubscribe]\nurl = \"https://e.com/u?a=\\r\\nBcc: x@y\"\n");
  EXPECT_EQ(e.line, 5u);
  EXPECT_NE(e.reason.find("unsubscribe.url: a control"), std::string::npos) << e.reason;
  e = MustRefuse(base + "[unsubscribe]\nurl = \"https://e.com/u>, <https://evil.example/\"\n");
  EXPECT_NE(e.reason.find("'>'"), std::string::npos) << e.reason;
}

TEST(ManifestFeedbackId, FromManifestAndConfiguration) {
  const std::string ids = std::string(kBase) + "campaign = \"spring\"\ntenant = \"acme\"\n";
  Manifest m = MustParse(ids + "feedback_id_sender = \"esp\"\n");
  EXPECT_EQ(m.bulk.feedback_id, "spring:acme:esp");
  EXPECT_TRUE(m.bulk.feedback_id_from_manifest);
  BatchLimits l;
  l.feedback_id_sender = "sluice1";
  m = MustParse(ids, l);
  EXPECT_EQ(m.bulk.feedback_id, "spring:acme:sluice1");
  EXPECT_FALSE(m.bulk.feedback_id_from_manifest);
  m = MustParse(ids + "feedback_id_sender = \"esp\"\n", l);  // the manifest's wins
  EXPECT_EQ(m.bulk.feedback_id, "spring:acme:esp");
  // The configuration's default skips a batch without campaign and tenant.
  m = MustParse(std::string(kBase) + "campaign = \"spring\"\n", l);
  EXPECT_EQ(m.bulk.feedback_id, "");
  EXPECT_EQ(MustParse(ids).bulk.feedback_id, "");  // no sender id anywhere
}

TEST(ManifestFeedbackId, Refusals) {
  BatchError e = MustRefuse(std::string(kBase) + "feedback_id_sender = \"esp\"\n");
  EXPECT_NE(e.reason.find("needs campaign and tenant"), std::string::npos) << e.reason;
  e = MustRefuse(std::string(kBase) +
                 "campaign = \"a:b\"\ntenant = \"t\"\nfeedback_id_sender = \"esp\"\n");
  EXPECT_NE(e.reason.find("campaign 'a:b' has a ':'"), std::string::npos) << e.reason;
  BatchLimits l;
  l.feedback_id_sender = "esp";
  e = MustRefuse(std::string(kBase) + "campaign = \"c\"\ntenant = \"t:1\"\n", l);
  EXPECT_NE(e.reason.find("tenant 't:1'"), std::string::npos) << e.reason;
  for (const char* bad : {"a:b", "a b", "", "\\u00e9"}) {
    e = MustRefuse(std::string(kBase) +
                   "campaign = \"c\"\ntenant = \"t\"\nfeedback_id_sender = \"" + bad + "\"\n");
    EXPECT_NE(e.reason.find("feedback_id_sender: must be"), std::string::npos) << bad;
  }
}

// ---------------------------------------------------------------------------
// The template with the manifest's fields

PreparedTemplate MustPrepare(const std::string& tmpl, const Manifest& m,
                             const BatchLimits& limits = BatchLimits{}) {
  PreparedTemplate t;
  BatchError e;
  EXPECT_TRUE(PrepareTemplate("t.eml", tmpl, limits, t, e, &m)) << e.ToString();
  return t;
}

BatchError MustNotPrepare(const std::string& tmpl, const Manifest& m,
                          const BatchLimits& limits = BatchLimits{}) {
  PreparedTemplate t;
  BatchError e;
  EXPECT_FALSE(PrepareTemplate("t.eml", tmpl, limits, t, e, &m)) << tmpl;
  return e;
}

Manifest Unsubscribing() {
  return MustParse(std::string(kBase) +
                   "campaign = \"spring\"\ntenant = \"acme\"\nfeedback_id_sender = \"esp\"\n"
                   "[unsubscribe]\nurl = \"https://e.com/u?r={{email}}&c={{code}}\"\n"
                   "mailto = \"unsub+{{code}}@e.com\"\n");
}

TEST(PrepareWithManifest, FieldsAtTheEndOfTheHeaderAndRenderedPerRecipient) {
  const PreparedTemplate t = MustPrepare(
      "From: news@example.com\nSubject: Hi {{name}}\n\nDear {{name}}\n", Unsubscribing());
  EXPECT_EQ(t.stored,
            "From: news@example.com\r\nSubject: Hi {{name}}\r\n"
            "List-Unsubscribe: <https://e.com/u?r={{email|url}}&c={{code|url}}>,\r\n"
            " <mailto:unsub+{{code|url}}@e.com>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            "Feedback-ID: spring:acme:esp\r\n"
            "\r\nDear {{name}}\r\n");
  EXPECT_EQ(t.compiled.fields, (std::vector<std::string>{"name", "email", "code"}));
  // Template positions stay the template file's; the manifest's fields have none.
  EXPECT_EQ(t.compiled.first_use[0].line, 2u);
  EXPECT_EQ(t.compiled.first_use[1].line, 0u);
  EXPECT_EQ(t.compiled.first_use[2].line, 0u);
  // Injection attempts in values: encoded, never a new line or a new URI.
  const std::vector<std::string> values = {"Ann", "a@x.org>, <https://evil/", "1\r\nBcc: e@vil"};
  const std::string out = merge::Render(t.compiled, values);
  EXPECT_NE(out.find("List-Unsubscribe: <https://e.com/u?r=a%40x.org%3E%2C%20%3Chttps%3A%2F%2Fevil"
                     "%2F&c=1%0D%0ABcc%3A%20e%40vil>,\r\n <mailto:unsub+1%0D%0ABcc%3A%20e%40vil@"
                     "e.com>\r\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("\r\nBcc"), std::string::npos);
  // Errors in the body still name the template's own lines.
  BatchError e = MustNotPrepare("From: a@b.c\n\nok\n{{bad\n", Unsubscribing());
  EXPECT_EQ(e.file, "t.eml");
  EXPECT_EQ(e.line, 4u);
}

TEST(PrepareWithManifest, WithoutPlaceholdersTheHeadersAreLiteral) {
  const Manifest m =
      MustParse(std::string(kBase) + "[unsubscribe]\nurl = \"https://e.com/u/list-7\"\n");
  const PreparedTemplate t = MustPrepare("From: a@b.c\n\nbody\n", m);
  EXPECT_FALSE(t.compiled.has_placeholders());
  EXPECT_EQ(t.stored,
            "From: a@b.c\r\nList-Unsubscribe: <https://e.com/u/list-7>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nbody\r\n");
}

TEST(PrepareWithManifest, ConflictsWithTheTemplate) {
  BatchError e =
      MustNotPrepare("From: a@b.c\nlist-unsubscribe: <mailto:x@y.z>\n\nx\n", Unsubscribing());
  EXPECT_EQ(e.line, 2u);
  EXPECT_NE(e.reason.find("in the template and [unsubscribe]"), std::string::npos) << e.reason;
  e = MustNotPrepare("From: a@b.c\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n\nx\n",
                     Unsubscribing());
  EXPECT_EQ(e.line, 2u);
  e = MustNotPrepare("From: a@b.c\nFeedback-ID: a:b:c\n\nx\n", Unsubscribing());
  EXPECT_NE(e.reason.find("feedback_id_sender"), std::string::npos) << e.reason;
  // The configuration's default yields to the template's own Feedback-ID.
  BatchLimits l;
  l.feedback_id_sender = "dflt";
  const Manifest m = MustParse(std::string(kBase) + "campaign = \"c\"\ntenant = \"t\"\n", l);
  ASSERT_EQ(m.bulk.feedback_id, "c:t:dflt");
  PreparedTemplate t = MustPrepare("From: a@b.c\nFeedback-ID: x:y:mine\n\nx\n", m, l);
  EXPECT_EQ(t.stored, "From: a@b.c\r\nFeedback-ID: x:y:mine\r\n\r\nx\r\n");
  t = MustPrepare("From: a@b.c\n\nx\n", m, l);
  EXPECT_EQ(t.stored, "From: a@b.c\r\nFeedback-ID: c:t:dflt\r\n\r\nx\r\n");
  // Without [unsubscribe], a template's own List-Unsubscribe is its business.
  t = MustPrepare("From: a@b.c\nList-Unsubscribe: <mailto:x@y.z>\n\nx\n", m, l);
  EXPECT_NE(t.stored.find("List-Unsubscribe: <mailto:x@y.z>"), std::string::npos);
}

TEST(PrepareWithManifest, AddedLinesMustFitTheLineLimit) {
  BatchLimits l;
  l.max_line_length = 78;
  const Manifest m = MustParse(std::string(kBase) + "[unsubscribe]\nurl = \"https://e.com/" +
                               std::string(60, 'a') + "\"\n");
  const BatchError e = MustNotPrepare("From: a@b.c\n\nx\n", m, l);
  EXPECT_EQ(e.file, "manifest.toml");
  EXPECT_NE(e.reason.find("the List-Unsubscribe line would be"), std::string::npos) << e.reason;
}

TEST(PrepareWithManifest, UnknownFieldOfTheManifestNamesTheManifest) {
  const PreparedTemplate t = MustPrepare("From: a@b.c\n\n{{name}}\n", Unsubscribing());
  BatchLimits l;
  BatchBuilder b(t, "t.eml", "r.csv", l);
  EXPECT_FALSE(b.Feed("email,name\na@x.org,A\n") && b.Finish());
  EXPECT_EQ(b.error().ToString(),
            "manifest.toml: [unsubscribe] uses the field 'code' but r.csv has only the columns "
            "email, name");
}

TEST(PrepareWithManifest, EncodedValuesCountAgainstTheLineLimit) {
  BatchLimits l;
  l.max_line_length = 100;
  const Manifest m =
      MustParse(std::string(kBase) + "[unsubscribe]\nurl = \"https://e.com/{{v}}\"\n");
  const PreparedTemplate t = MustPrepare("From: a@b.c\n\nx\n", m, l);
  BatchBuilder b(t, "t.eml", "r.csv", l);
  // "List-Unsubscribe: <https://e.com/" (33) + value + ">\r\n" (3): 64 bytes of
  // value fit raw; 22 spaces encode to 66.
  ASSERT_TRUE(b.Feed("email,v\na@x.org," + std::string(40, 'a') + "\nb@x.org," +
                     std::string(22, ' ') + "x\n"));
  ASSERT_TRUE(b.Finish()) << b.error().ToString();
  EXPECT_EQ(b.accepted(), 1u);
  ASSERT_EQ(b.notes().size(), 1u);
  EXPECT_NE(b.notes()[0].find("line 3: the merged message would have a line of 103 bytes"),
            std::string::npos)
      << b.notes()[0];
}

// ---------------------------------------------------------------------------
// From: in a template (server.require_from)

TEST(TemplateFrom, ExactlyOneWhenRequired) {
  BatchLimits l;
  l.require_from = true;
  PreparedTemplate t;
  BatchError e;
  ASSERT_TRUE(PrepareTemplate("t.eml", "From: a@b.c\nSubject: x\n\nFrom: in the body\n", l, t, e))
      << e.ToString();
  EXPECT_EQ(t.from_count, 1u);
  ASSERT_TRUE(PrepareTemplate("t.eml", "FROM:\n  \"{{name}}\" <a@b.c>\n\nx\n", l, t, e))
      << e.ToString();  // folded, upper case
  EXPECT_FALSE(PrepareTemplate("t.eml", "Subject: x\n\nFrom: a@b.c\n", l, t, e));
  EXPECT_EQ(e.line, 0u);
  EXPECT_NE(e.reason.find("no From field"), std::string::npos) << e.reason;
  EXPECT_FALSE(PrepareTemplate("t.eml", "From: a@b.c\nSubject: x\nfrom: c@d.e\n\nx\n", l, t, e));
  EXPECT_EQ(e.line, 3u);
  EXPECT_NE(e.reason.find("a second From field"), std::string::npos) << e.reason;
  // Not required: counted, accepted.
  l.require_from = false;
  ASSERT_TRUE(PrepareTemplate("t.eml", "From: a@b.c\nFrom: c@d.e\n\nx\n", l, t, e));
  EXPECT_EQ(t.from_count, 2u);
  ASSERT_TRUE(PrepareTemplate("t.eml", "Subject: x\n\nx\n", l, t, e));
  EXPECT_EQ(t.from_count, 0u);
}

}  // namespace
}  // namespace sluice::pickup
