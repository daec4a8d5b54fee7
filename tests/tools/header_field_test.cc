#include "tools/common/header_field.h"

#include <gtest/gtest.h>

namespace sluice::tools {
namespace {

TEST(HeaderField, FindsAFieldInTheHeaderBlockOnly) {
  const std::string_view signed_msg =
      "Received: from x\r\nDKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\nFrom: <a@b>\r\n\r\n"
      "body\r\n";
  EXPECT_TRUE(HasHeaderField(signed_msg, "DKIM-Signature"));
  EXPECT_TRUE(HasHeaderField("dkim-signature : v=1\r\n\r\n", "DKIM-Signature"));
  EXPECT_TRUE(HasHeaderField("DKIM-Signature:v=1", "DKIM-Signature"));  // no body at all
  // In the body, in a continuation line, or as a longer name: not a field.
  EXPECT_FALSE(HasHeaderField("From: <a@b>\r\n\r\nDKIM-Signature: v=1\r\n", "DKIM-Signature"));
  EXPECT_FALSE(HasHeaderField("X-Note: a\r\n DKIM-Signature: v=1\r\n\r\n", "DKIM-Signature"));
  EXPECT_FALSE(HasHeaderField("DKIM-Signatures: v=1\r\n\r\n", "DKIM-Signature"));
  EXPECT_FALSE(HasHeaderField("DKIM-Signature v=1\r\n\r\n", "DKIM-Signature"));
  EXPECT_FALSE(HasHeaderField("", "DKIM-Signature"));
}

}  // namespace
}  // namespace sluice::tools
