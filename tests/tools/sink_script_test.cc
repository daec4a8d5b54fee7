#include <gtest/gtest.h>

#include "tools/sink/script.h"

namespace sluice::tools {
namespace {

uint32_t Always0() { return 0; }
uint32_t Always99() { return 99; }

TEST(SinkScript, ParsesEveryAction) {
  auto r = ParseSinkScript(
      "# comment\n"
      "\n"
      "match=*@slow.example action=delay=250\n"
      "match=*@t.example action=tempfail percent=50\n"
      "match=*@p.example action=permfail\n"
      "match=* action=421-connect percent=10\n"
      "  match=drop*@* action=drop-data  \r\n"
      "match=*@ok.example action=accept\n"
      "match=*@d2.example delay=7\n");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 7u);
  EXPECT_EQ((*r)[0].action, SinkAction::kDelay);
  EXPECT_EQ((*r)[0].delay_ms, 250u);
  EXPECT_EQ((*r)[0].line, 3);
  EXPECT_EQ((*r)[1].action, SinkAction::kTempfail);
  EXPECT_EQ((*r)[1].percent, 50u);
  EXPECT_EQ((*r)[2].action, SinkAction::kPermfail);
  EXPECT_EQ((*r)[3].action, SinkAction::kConnect421);
  EXPECT_EQ((*r)[4].action, SinkAction::kDropData);
  EXPECT_EQ((*r)[4].glob, "drop*@*");
  EXPECT_EQ((*r)[5].action, SinkAction::kAccept);
  EXPECT_EQ((*r)[6].action, SinkAction::kDelay);
  EXPECT_EQ((*r)[6].delay_ms, 7u);
}

TEST(SinkScript, Errors) {
  EXPECT_FALSE(ParseSinkScript("match=* action=explode\n").ok());
  EXPECT_FALSE(ParseSinkScript("match=*\n").ok());
  EXPECT_FALSE(ParseSinkScript("action=tempfail\n").ok());
  EXPECT_FALSE(ParseSinkScript("match=* action=tempfail percent=101\n").ok());
  EXPECT_FALSE(ParseSinkScript("match=* action=delay=x\n").ok());
  EXPECT_FALSE(ParseSinkScript("match=* action=accept bogus\n").ok());
  EXPECT_FALSE(ParseSinkScript("match=* action=accept color=red\n").ok());
  auto e = ParseSinkScript("\n\nmatch=* action=nope\n");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(std::string(e.status().message()).find("line 3"), std::string::npos);
  EXPECT_TRUE(ParseSinkScript("action=421-connect\n").ok());  // glob optional there
}

TEST(SinkScript, Decisions) {
  auto r = ParseSinkScript(
      "match=*@T.example action=tempfail\n"
      "match=half@* action=permfail percent=50\n"
      "match=half@* action=delay=9\n"
      "match=* action=421-connect percent=30\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(DecideRecipient(*r, "a@t.example", Always0).action, SinkAction::kTempfail);
  EXPECT_EQ(DecideRecipient(*r, "a@x.example", Always0).action, SinkAction::kAccept);
  EXPECT_EQ(DecideRecipient(*r, "half@x", Always0).action, SinkAction::kPermfail);
  const SinkDecision d = DecideRecipient(*r, "half@x", Always99);
  EXPECT_EQ(d.action, SinkAction::kDelay);
  EXPECT_EQ(d.delay_ms, 9u);
  // Built-in conventions win over rules.
  EXPECT_EQ(DecideRecipient(*r, "tempfail@x.example", Always0).action, SinkAction::kTempfail);
  EXPECT_EQ(DecideRecipient(*r, "PERMFAIL@t.example", Always0).action, SinkAction::kPermfail);
  EXPECT_TRUE(RefuseAtConnect(*r, Always0));
  EXPECT_FALSE(RefuseAtConnect(*r, Always99));
  EXPECT_FALSE(RefuseAtConnect({}, Always0));
}

}  // namespace
}  // namespace sluice::tools
