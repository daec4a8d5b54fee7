"""Session-level commands: banner, EHLO/HELO, NOOP, RSET, VRFY, HELP, QUIT,
unknown and unimplemented commands, command sequencing and MAIL/RCPT syntax.
Reply texts: docs/PROTOCOL.md."""

import pytest

from sluice_harness import (
    BAD_RCPT,
    BAD_SENDER,
    BYE,
    DATA_GO,
    DEFAULT_MAX_MESSAGE_SIZE,
    HELP_TEXT,
    HOSTNAME,
    MAIL_OK,
    MAIL_SYNTAX,
    NEED_HELO,
    NEED_MAIL,
    NESTED_MAIL,
    NO_VALID_RCPT,
    NOT_IMPLEMENTED,
    OK,
    RCPT_OK,
    RCPT_SYNTAX,
    TOO_BIG,
    UNKNOWN_CMD,
    VRFY_TEXT,
    bad_param_value,
    expect_line,
    expect_queued,
    norm_addr,
    unsupported_option,
)


def test_banner(sluice):
    c = sluice.connect()
    expect_line(c.banner(), f"220 {HOSTNAME} ESMTP Sluice")


def test_ehlo_capabilities_exact(sluice):
    c = sluice.connect()
    c.banner()
    r = c.cmd("EHLO client.example.org")
    assert r.full_lines == [
        f"250-{HOSTNAME} Hello client.example.org",
        "250-PIPELINING",
        f"250-SIZE {DEFAULT_MAX_MESSAGE_SIZE}",
        "250-8BITMIME",
        "250-ENHANCEDSTATUSCODES",
        "250-CHUNKING",
        "250 SMTPUTF8",
    ], str(r)


def test_ehlo_size_follows_max_message_size(sluice_factory):
    d = sluice_factory(max_message_size=123456)
    c = d.connect()
    c.banner()
    r = c.cmd("EHLO x.example")
    assert "SIZE 123456" in r.lines, str(r)


def test_helo(sluice):
    c = sluice.connect()
    c.banner()
    expect_line(c.cmd("HELO client.example.org"), f"250 {HOSTNAME}")
    # HELO is enough for a transaction
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)


def test_second_ehlo_resets_transaction(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    assert c.cmd("EHLO again.example").code == 250
    # RFC 5321 4.1.4: EHLO clears the transaction
    expect_line(c.cmd("DATA"), NEED_MAIL)


@pytest.mark.parametrize("verb", ["EHLO", "HELO"])
def test_ehlo_helo_without_name(sluice, verb):
    c = sluice.connect()
    c.banner()
    expect_line(c.cmd(verb), f"501 5.5.4 Syntax: {verb} hostname")
    # the session goes on
    expect_line(c.cmd("NOOP"), OK)


def test_noop(sluice):
    c = sluice.session()
    expect_line(c.cmd("NOOP"), OK)


def test_noop_before_ehlo(sluice):
    c = sluice.connect()
    c.banner()
    expect_line(c.cmd("NOOP"), OK)


def test_rset_drops_transaction(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("RSET"), OK)
    expect_line(c.cmd("DATA"), NEED_MAIL)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), NEED_MAIL)
    # a new transaction starts cleanly (no "nested MAIL")
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)


def test_vrfy(sluice):
    c = sluice.session()
    expect_line(c.cmd("VRFY postmaster"), VRFY_TEXT)
    expect_line(c.cmd("VRFY <someone@example.net>"), VRFY_TEXT)


def test_help(sluice):
    c = sluice.session()
    expect_line(c.cmd("HELP"), HELP_TEXT)


def test_quit_closes(sluice):
    c = sluice.session()
    expect_line(c.cmd("QUIT"), BYE)
    extra = c.wait_closed(5)
    assert extra == b"", f"bytes after 221: {extra!r}"


def test_quit_before_ehlo(sluice):
    c = sluice.connect()
    c.banner()
    expect_line(c.cmd("QUIT"), BYE)
    c.wait_closed(5)


@pytest.mark.parametrize("line", ["FOO", "MAILX FROM:<a@b.example>", "HELLO there", "X", "DATAX", "QUITNOW"])
def test_unknown_command(sluice, line):
    c = sluice.session()
    expect_line(c.cmd(line), UNKNOWN_CMD)
    expect_line(c.cmd("NOOP"), OK)


@pytest.mark.parametrize("line", ["EXPN staff", "ETRN example.com", "TURN", "STARTTLS", "AUTH PLAIN AGJvYgBwdw=="])
def test_not_implemented(sluice, line):
    c = sluice.session()
    expect_line(c.cmd(line), NOT_IMPLEMENTED)
    expect_line(c.cmd("NOOP"), OK)


def test_mail_before_ehlo(sluice):
    c = sluice.connect()
    c.banner()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), NEED_HELO)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), NEED_MAIL)
    expect_line(c.cmd("DATA"), NEED_MAIL)


def test_sequence_errors(sluice):
    c = sluice.session()
    expect_line(c.cmd("RCPT TO:<b@example.net>"), NEED_MAIL)
    expect_line(c.cmd("DATA"), NEED_MAIL)
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("DATA"), NO_VALID_RCPT)
    expect_line(c.cmd("MAIL FROM:<other@example.com>"), NESTED_MAIL)
    # the first transaction is still the open one
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: seq\r\n\r\nbody\r\n.\r\n")
    qid = expect_queued(c.reply())
    [entry] = sluice.queue_list()
    assert entry.id == qid and norm_addr(entry.sender) == "a@example.com", entry.line


def test_data_with_only_rejected_recipients(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<broken"), BAD_RCPT)
    expect_line(c.cmd("DATA"), NO_VALID_RCPT)
    expect_line(c.cmd("NOOP"), OK)
    assert sluice.queue_list() == []


@pytest.mark.parametrize("line", ["MAIL", "MAIL <a@example.com>", "MAIL TO:<a@example.com>", "MAIL FROM", "MAIL FRM:<a@example.com>"])
def test_mail_without_from(sluice, line):
    c = sluice.session()
    expect_line(c.cmd(line), MAIL_SYNTAX)
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)


BAD_PATHS = [
    "<foo@example.com",  # unclosed
    "<foo@>",  # empty domain
    "<foo@@example.com>",  # two @
    "<foo@example..com>",  # empty label
    "<" + "x" * 65 + "@example.com>",  # local part over 64 octets
    '<"foo@example.com>',  # unterminated quoted string
    "<foo@" + ("a" * 60 + ".") * 5 + "com>",  # domain over 255 octets
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_mail_bad_path(sluice, path):
    c = sluice.session()
    expect_line(c.cmd(f"MAIL FROM:{path}"), BAD_SENDER)
    # no transaction was opened
    expect_line(c.cmd("RCPT TO:<b@example.net>"), NEED_MAIL)


@pytest.mark.parametrize("path", BAD_PATHS + ["<>"])
def test_rcpt_bad_path(sluice, path):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd(f"RCPT TO:{path}"), BAD_RCPT)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)


@pytest.mark.parametrize("line", ["RCPT", "RCPT <b@example.net>", "RCPT FROM:<b@example.net>", "RCPT TO"])
def test_rcpt_without_to(sluice, line):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd(line), RCPT_SYNTAX)


def test_mail_unknown_parameter(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com> FOO=bar"), unsupported_option("FOO"))
    expect_line(c.cmd("MAIL FROM:<a@example.com> XYZZY"), unsupported_option("XYZZY"))
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)


def test_rcpt_parameters_unsupported(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net> NOTIFY=NEVER"), unsupported_option("NOTIFY"))
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)


def test_mail_size_too_big(sluice):
    c = sluice.session()
    expect_line(c.cmd(f"MAIL FROM:<a@example.com> SIZE={DEFAULT_MAX_MESSAGE_SIZE + 1}"), TOO_BIG)
    # no transaction open
    expect_line(c.cmd("RCPT TO:<b@example.net>"), NEED_MAIL)
    expect_line(c.cmd(f"MAIL FROM:<a@example.com> SIZE={DEFAULT_MAX_MESSAGE_SIZE}"), MAIL_OK)


@pytest.mark.parametrize("param,name", [
    ("SIZE=abc", "SIZE"),
    ("SIZE=", "SIZE"),
    ("SIZE=-1", "SIZE"),
    ("SIZE=12x", "SIZE"),
    ("BODY=9BIT", "BODY"),
    ("BODY=", "BODY"),
])
def test_mail_bad_parameter_value(sluice, param, name):
    c = sluice.session()
    expect_line(c.cmd(f"MAIL FROM:<a@example.com> {param}"), bad_param_value(name))
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)


@pytest.mark.parametrize("params", ["SIZE=1000", "BODY=8BITMIME", "BODY=7BIT", "SMTPUTF8",
                                    "SIZE=0 BODY=8BITMIME SMTPUTF8", "size=10 body=8bitmime"])
def test_mail_supported_parameters(sluice, params):
    c = sluice.session()
    expect_line(c.cmd(f"MAIL FROM:<a@example.com> {params}"), MAIL_OK)


def test_null_sender_accepted(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: bounce\r\n\r\nnull sender\r\n.\r\n")
    qid = expect_queued(c.reply())
    [entry] = sluice.queue_list()
    assert entry.id == qid
    assert entry.sender == "<>", f"null sender must be listed as <>: {entry.line!r}"
    assert entry.rcptcount == 1
    [js] = sluice.queue_json()
    assert norm_addr(js["sender"]) == "", js


def test_commands_case_insensitive(sluice):
    c = sluice.connect()
    c.banner()
    assert c.cmd("ehlo lower.example").code == 250
    expect_line(c.cmd("noop"), OK)
    expect_line(c.cmd("NoOp"), OK)
    expect_line(c.cmd("help"), HELP_TEXT)
    expect_line(c.cmd("vrfy x"), VRFY_TEXT)
    expect_line(c.cmd("mail from:<a@example.com> body=8bitmime"), MAIL_OK)
    expect_line(c.cmd("rCpT tO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("rset"), OK)
    expect_line(c.cmd("Mail From:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("rcpt to:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("data"), DATA_GO)
    c.send(b"Subject: case\r\n\r\nx\r\n.\r\n")
    expect_queued(c.reply())
    expect_line(c.cmd("qUiT"), BYE)
    c.wait_closed(5)


def test_smtputf8_address(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8".encode("utf-8")), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<\u7528\u6237@\u4f8b\u5b50.example>".encode("utf-8")), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    body = "Subject: utf8\r\n\r\nGr\u00fc\u00dfe\r\n".encode("utf-8")
    c.send(body + b".\r\n")
    qid = expect_queued(c.reply())
    [js] = sluice.queue_json()
    assert js["id"] == qid
    assert norm_addr(js["sender"]) == "j\u00f6rg@b\u00fccher.example", js
    assert [norm_addr(r) for r in js["recipients"]] == ["\u7528\u6237@\u4f8b\u5b50.example"], js
    assert sluice.queue_show(qid).endswith(body)


def test_ipv6_listener(sluice_factory, ipv6_loopback):
    if not ipv6_loopback:
        pytest.skip("no IPv6 loopback on this machine")
    d = sluice_factory(listen_hosts=("127.0.0.1", "::1"))
    for host in ("127.0.0.1", "::1"):
        c = d.session(host=host)
        expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
        expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
        expect_line(c.cmd("DATA"), DATA_GO)
        c.send(f"Subject: via {host}\r\n\r\nx\r\n.\r\n")
        qid = expect_queued(c.reply())
        js = d.queue_json_by_id()[qid]
        assert js["client"] == host, js
