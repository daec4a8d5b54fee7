"""Self-tests of the delivery test peers (delivery_peers.py, conftest_delivery.py):
dnsmasq's answers seen by a stub resolver, every scripted receiver behaviour
seen by smtplib and by a raw pipelining client, sluice-sink on 127.0.0.2 with
--store, and a whole delivery world. No sluice here: these prove the peers
before the delivery tests rely on them."""

from __future__ import annotations

import os
import smtplib
import socket
import threading
import time
import tomllib
from pathlib import Path

import pytest

from conftest_delivery import ReceiverFactory
from delivery_peers import (
    DnsServer,
    PeerError,
    ScriptedReceiver,
    default_mx_name,
    dns_query,
    free_mx_port,
)
from sluice_harness import CLIENT_HELO, SmtpClient, dot_stuff, make_message, scaled, wait_for


def smtp(host: str, port: int, timeout: float = 10.0) -> smtplib.SMTP:
    return smtplib.SMTP(host, port, local_hostname=CLIENT_HELO, timeout=scaled(timeout))


def raw(host: str, port: int, timeout: float = 10.0) -> SmtpClient:
    return SmtpClient(host, port, timeout=timeout)


TRICKY = make_message("dots", body=[".leading dot", "..two dots", ".", "x", "", "last line"])


# --------------------------------------------------------------------------
# dnsmasq
# --------------------------------------------------------------------------


def test_dns_answers_mx_a_aaaa_null_mx_nxdomain(dns_server):
    dns = dns_server
    dns.mx("d1.test", [(10, "mx1.d1.test"), (20, "mx2.d1.test"), (20, "mx3.d1.test"), (5, "gone.test")])
    dns.a("mx1.d1.test", "127.0.0.2").a("mx2.d1.test", ["127.0.0.3", "127.0.0.4"]).aaaa("mx3.d1.test", "::1")
    dns.null_mx("null.test")
    dns.a("implicit.test", "127.0.0.9")
    dns.apply()
    for tcp in (False, True):
        mx = dns.query("D1.Test", "MX", tcp=tcp)
        assert mx.rcode_name == "NOERROR" and not mx.truncated, mx
        assert mx.mx() == [(5, "gone.test"), (10, "mx1.d1.test"), (20, "mx2.d1.test"), (20, "mx3.d1.test")]
        assert mx.ttls() == [1] * 4
    assert dns.query("mx2.d1.test", "A").addresses() == ["127.0.0.3", "127.0.0.4"]
    assert dns.query("mx1.d1.test", "A").addresses() == ["127.0.0.2"]
    assert dns.query("mx3.d1.test", "AAAA").addresses() == ["::1"]
    # A name with records but not of the asked type: NOERROR, no answer.
    nodata = dns.query("mx3.d1.test", "A")
    assert nodata.rcode_name == "NOERROR" and nodata.answers == []
    implicit = dns.query("implicit.test", "MX")
    assert implicit.rcode_name == "NOERROR" and implicit.answers == []
    assert dns.query("implicit.test", "A").addresses() == ["127.0.0.9"]
    # RFC 7505: exactly one MX, preference 0, exchange the root.
    null = dns.query("null.test", "MX")
    assert null.rcode_name == "NOERROR" and null.mx() == [(0, ".")], null
    for name in ("gone.test", "nowhere.test", "sub.d1.test", "example.com"):
        assert dns.query(name, "MX").rcode_name == "NXDOMAIN", name
        assert dns.query(name, "A").rcode_name == "NXDOMAIN", name
    assert ("MX", "d1.test") in dns.queries()


def test_dns_restart_keeps_the_port(dns_server):
    dns = dns_server
    dns.mx("d1.test", [(10, "mx1.d1.test")]).a("mx1.d1.test", "127.0.0.2").apply()
    spec, pid, restarts = dns.spec, dns.proc.pid, dns.restarts
    dns.mx("d1.test", [(30, "mx9.d1.test")]).a("mx9.d1.test", "127.0.0.9").remove("mx1.d1.test")
    with pytest.raises(PeerError, match="apply"):
        dns.spec
    dns.apply()
    assert dns.spec == spec and dns.proc.pid != pid and dns.restarts == restarts + 1
    assert dns.query("d1.test", "MX").mx() == [(30, "mx9.d1.test")]
    assert dns.query("mx1.d1.test", "A").rcode_name == "NXDOMAIN"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the old dnsmasq is gone, not leaked


def test_dns_outside_refused_and_ttl(tmp_path):
    dns = DnsServer(tmp_path, outside="refused", ttl=60)
    try:
        dns.a("host.test", "127.0.0.5").apply()
        assert dns.query("example.com", "A").rcode_name == "REFUSED"
        assert dns.query("nowhere.test", "A").rcode_name == "NXDOMAIN"
        assert dns.query("host.test", "A").ttls() == [60]
    finally:
        dns.stop()
    assert not dns.alive()


def test_dns_bad_input(dns_server):
    dns = dns_server
    with pytest.raises(ValueError, match="outside"):
        dns.mx("example.com", [(10, "mx.test")])
    with pytest.raises(ValueError, match="valid DNS name"):
        dns.a("bad,name.test", "127.0.0.1")
    with pytest.raises(ValueError, match="IPv4"):
        dns.a("v6.test", "::1")
    with pytest.raises(ValueError, match="IPv6"):
        dns.aaaa("v4.test", "127.0.0.1")
    with pytest.raises(ValueError):
        dns.a("x.test", "127.0.0.300")
    with pytest.raises(ValueError, match="preference"):
        dns.mx("d.test", [(70000, "mx.test")])
    with pytest.raises(ValueError, match="null_mx"):
        dns.mx("d.test", [(0, ".")])
    with pytest.raises(ValueError, match="no MX"):
        dns.mx("d.test", [])
    with pytest.raises(ValueError, match="outside must be"):
        DnsServer(Path("/nonexistent-never-created"), outside="servfail")


def test_dns_tcp_client_does_not_block_udp_and_stop_ends_children(dns_server):
    """--keep-in-foreground: a TCP connection held open is served by a child
    and UDP keeps working; stopping dnsmasq ends that child too."""
    dns = dns_server
    dns.a("h.test", "127.0.0.7").apply()
    held = socket.create_connection(dns.address, timeout=scaled(3))
    try:
        held.sendall(b"\x00")  # half a length prefix: the TCP server waits for more
        children = wait_for(lambda: _children(dns.proc.pid), 3, what="dnsmasq TCP child")
        assert dns.query("h.test", "A", timeout=scaled(2)).addresses() == ["127.0.0.7"]
        dns.stop()
        wait_for(lambda: all(_gone(c) for c in children), 5, what=f"dnsmasq TCP children {children} gone")
    finally:
        held.close()


def _children(pid: int) -> list:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


def test_dead_dns_never_answers(dead_dns):
    t0 = time.monotonic()
    with pytest.raises(socket.timeout):
        dns_query(dead_dns.address, "d1.test", "MX", timeout=0.3)
    assert time.monotonic() - t0 < scaled(2)
    wait_for(lambda: dead_dns.queries() == 1, 2, what="the query seen by the dead resolver")
    with socket.create_connection(dead_dns.address, timeout=1) as s:  # TCP: accepted by the kernel, silent
        s.settimeout(0.2)
        s.sendall(b"\x00\x10")
        with pytest.raises(socket.timeout):
            s.recv(10)


# --------------------------------------------------------------------------
# The scripted receiver: plain behaviour and the record
# --------------------------------------------------------------------------


def test_receiver_accepts_and_records_exact_bytes(receiver_factory):
    r = receiver_factory("127.0.0.2")
    assert r.host == "127.0.0.2"
    t0 = time.monotonic()
    with smtp("127.0.0.2", r.port) as s:
        code, resp = s.ehlo()
        assert code == 250
        assert {"pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8"} <= set(s.esmtp_features)
        assert s.sendmail("alice@src.test", ["bob@d1.test", "Carol@D1.test"], TRICKY) == {}
    wait_for(lambda: r.connections() and r.connections()[0]["reason"] == "quit", 5, what="QUIT recorded")
    (m,) = r.messages()
    assert m["body"] == TRICKY, "unstuffed body must equal the message sent"
    assert Path(m["eml"]).read_bytes() == TRICKY
    assert m["mail_from"] == "alice@src.test"
    assert m["rcpts"] == ["bob@d1.test", "Carol@D1.test"] and m["rcpts_refused"] == []
    assert m["helo"] == CLIENT_HELO and m["esmtp"] is True
    assert m["local"] == f"127.0.0.2:{r.port}" and m["peer"].startswith("127.0.0.1:"), (m["local"], m["peer"])
    assert m["reply"] == "250 2.0.0 Ok: queued as R1" and m["reply_sent"] is True and m["id"] == "R1"
    assert any(p.upper().startswith("SIZE=") for p in m["mail_params"])
    t = m["t"]
    assert t0 <= t["mail"] <= t["rcpt"][0] <= t["rcpt"][1] <= t["data"] <= t["data_end"] <= time.monotonic()
    (c,) = r.connections()
    assert c["open"] == 1 and c["refused"] is None and c["violations"] == []
    assert [x["stage"] for x in c["commands"]] == [
        "greeting", "ehlo", "mail", "rcpt", "rcpt", "data", "data_end", "quit"]
    assert not any(x["pipelined"] for x in c["commands"]), "smtplib does not pipeline"
    assert r.peak_connections() == 1 and r.open_connections() == 0
    assert r.commands("RCPT") == ["rcpt TO:<bob@d1.test>", "rcpt TO:<Carol@D1.test>"]  # as smtplib sends them
    assert r.rcpt_attempts("carol@d1.test") == 1
    r.assert_clean()


def test_receiver_pipelined_client(receiver_factory):
    r = receiver_factory("127.0.0.2")
    body = TRICKY + b"..\r\n.x\r\n"
    with raw("127.0.0.2", r.port) as c:
        c.greet()
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<x@d1.test>\r\nRCPT TO:<y@d1.test>\r\nDATA\r\n")
        replies = c.replies(4)
        assert [x.code for x in replies] == [250, 250, 250, 354]
        c.send(dot_stuff(body) + b".\r\nQUIT\r\n")
        assert [x.code for x in c.replies(2)] == [250, 221]
        c.wait_closed()
    (m,) = r.messages()
    assert m["body"] == body and m["rcpts"] == ["x@d1.test", "y@d1.test"]
    cmds = r.connections()[0]["commands"]
    by_stage = [(x["stage"], x["pipelined"]) for x in cmds]
    # MAIL and the first RCPT had their successors already received; DATA was last.
    assert by_stage[2:6] == [("mail", True), ("rcpt", True), ("rcpt", True), ("data", False)], by_stage
    assert by_stage[6] == ("data_end", True)  # QUIT came with the final dot
    r.assert_clean()


def test_receiver_framing_is_strict(receiver_factory):
    """Only CRLF.CRLF ends DATA; bare LF lines and long lines are recorded."""
    r = receiver_factory("127.0.0.2", check_clean=False)
    with raw("127.0.0.2", r.port) as c:
        c.greet()
        for cmd in ("MAIL FROM:<a@src.test>", "RCPT TO:<x@d1.test>"):
            assert c.cmd(cmd).code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: t\r\n\r\nbare\n.\nstill data\n.\r\nmore\r\n" + b"y" * 1200 + b"\r\n.\r\n")
        assert c.reply().code == 250
    (m,) = r.messages()
    # ".\n" and the "." after a bare-LF line are data (one dot unstuffed).
    assert m["body"] == b"Subject: t\r\n\r\nbare\n\nstill data\n\r\nmore\r\n" + b"y" * 1200 + b"\r\n"
    v = r.violations()
    assert any("bare CR or LF" in x for x in v) and any("longer than 1000" in x for x in v), v
    with pytest.raises(AssertionError, match="violations"):
        r.assert_clean()


def test_receiver_bare_lf_command_is_a_violation(receiver_factory):
    r = receiver_factory("127.0.0.2", check_clean=False)
    with raw("127.0.0.2", r.port) as c:
        c.banner()
        c.send(b"EHLO x.test\n")
        assert c.reply().code == 250
    assert any("bare LF" in x for x in r.violations())


# --------------------------------------------------------------------------
# Scripted refusals
# --------------------------------------------------------------------------


def test_tempfail_first_per_address(receiver_factory):
    r = receiver_factory("127.0.0.2", tempfail_first=True)
    msg = make_message()
    with smtp("127.0.0.2", r.port) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("a@src.test", ["x@d1.test", "y@d1.test"], msg)
        assert e.value.recipients == {
            "x@d1.test": (451, b"4.3.0 <x@d1.test>: First attempt deferred, try again"),
            "y@d1.test": (451, b"4.3.0 <y@d1.test>: First attempt deferred, try again"),
        }
        s.rset()
        # x again: now accepted; z is new: deferred once.
        assert s.sendmail("a@src.test", ["X@d1.test", "z@d1.test"], msg) == {
            "z@d1.test": (451, b"4.3.0 <z@d1.test>: First attempt deferred, try again")}
    with smtp("127.0.0.2", r.port) as s:  # counts survive the connection
        assert s.sendmail("a@src.test", ["y@d1.test", "z@d1.test"], msg) == {}
    msgs = r.messages()
    assert [m["rcpts"] for m in msgs] == [["X@d1.test"], ["y@d1.test", "z@d1.test"]]
    assert msgs[0]["rcpts_refused"] == [
        {"rcpt": "z@d1.test", "reply": "451 4.3.0 <z@d1.test>: First attempt deferred, try again"}]
    assert r.rcpt_attempts("x@d1.test") == 2


def test_tempfail_first_by_pattern(receiver_factory):
    r = receiver_factory("127.0.0.2", tempfail_first="grey*@*")
    with smtp("127.0.0.2", r.port) as s:
        assert s.sendmail("a@src.test", ["grey1@d1.test", "plain@d1.test"], make_message()) == {
            "grey1@d1.test": (451, b"4.3.0 <grey1@d1.test>: First attempt deferred, try again")}
    assert r.messages()[0]["rcpts"] == ["plain@d1.test"]


def test_permfail_and_tempfail_patterns(receiver_factory):
    r = receiver_factory("127.0.0.2", permfail=["bad*@*", "*@nouser.test"], tempfail=["slow*@d1.test"])
    with smtp("127.0.0.2", r.port) as s:
        s.ehlo()
        s.mail("a@src.test")
        assert s.rcpt("bad1@d1.test") == (550, b"5.1.1 <bad1@d1.test>: Recipient address rejected: User unknown")
        assert s.rcpt("x@NoUser.test")[0] == 550
        assert s.rcpt("slow@d1.test") == (451, b"4.7.1 <slow@d1.test>: Recipient address rejected: Try again later")
        assert s.rcpt("slow@d2.test")[0] == 250
        assert s.rcpt("ok@d1.test")[0] == 250
        assert s.data(make_message())[0] == 250
        s.mail("a@src.test")
        assert s.rcpt("bad2@d1.test")[0] == 550
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.data(make_message())
        assert (e.value.smtp_code, e.value.smtp_error) == (554, b"5.5.1 Error: no valid recipients")
        for _ in range(2):  # still refused: patterns are not "first attempt" rules
            s.mail("a@src.test")
            assert s.rcpt("bad1@d1.test")[0] == 550 and s.rcpt("slow@d1.test")[0] == 451
            s.rset()
    (m,) = r.messages()
    assert m["rcpts"] == ["slow@d2.test", "ok@d1.test"]
    assert [x["rcpt"] for x in m["rcpts_refused"]] == ["bad1@d1.test", "x@NoUser.test", "slow@d1.test"]


def test_rcpt_rules_max_rcpts_and_421_mid_session(receiver_factory):
    r = receiver_factory("127.0.0.2", max_rcpts=2, rcpt_rules=[["quota@*", "452 4.2.2 Mailbox full"],
                                                               ["close@*", "421 4.7.0 closing now"]])
    with raw("127.0.0.2", r.port) as c:
        c.greet()
        c.send("MAIL FROM:<a@src.test>\r\nRCPT TO:<quota@d1.test>\r\nRCPT TO:<a@d1.test>\r\n"
               "RCPT TO:<b@d1.test>\r\nRCPT TO:<c@d1.test>\r\nRCPT TO:<close@d1.test>\r\n")
        assert [str(x) for x in c.replies(6)] == [
            "250 2.1.0 Ok", "452 4.2.2 Mailbox full", "250 2.1.5 Ok", "250 2.1.5 Ok",
            "452 4.5.3 Error: too many recipients", "421 4.7.0 closing now"]
        c.wait_closed()
    assert r.connections()[0]["reason"] == "421"


def test_data_reply_first_n(receiver_factory):
    r = receiver_factory("127.0.0.2", data_reply="451 4.3.0 Queue busy", data_reply_count=1)
    with smtp("127.0.0.2", r.port) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@src.test", ["x@d1.test"], make_message())
        assert (e.value.smtp_code, e.value.smtp_error) == (451, b"4.3.0 Queue busy")
        assert s.sendmail("a@src.test", ["x@d1.test"], make_message()) == {}
    assert [(t["status"], t["reply"]) for t in r.transactions()] == [
        ("rejected", "451 4.3.0 Queue busy"), ("accepted", "250 2.0.0 Ok: queued as R1")]
    assert len(r.messages()) == 1


def test_421_at_connect_first_n(receiver_factory):
    r = receiver_factory("127.0.0.2", connect_421=2)
    for _ in range(2):
        with raw("127.0.0.2", r.port) as c:
            assert str(c.banner()) == f"421 4.3.2 {r.hostname} Service not available, closing channel"
            c.wait_closed()
    with smtp("127.0.0.2", r.port) as s:
        assert s.sendmail("a@src.test", ["x@d1.test"], make_message()) == {}
    conns = r.connections()
    assert [c["refused"] for c in conns] == ["421-connect", "421-connect", None]
    assert [c["reason"] for c in conns] == ["refused", "refused", "quit"]


def test_421_at_every_connect(receiver_factory):
    r = receiver_factory("127.0.0.2", connect_421=True)
    for _ in range(3):
        with pytest.raises(smtplib.SMTPConnectError) as e:
            smtp("127.0.0.2", r.port)
        assert e.value.smtp_code == 421
    wait_for(lambda: len(r.connections()) == 3, 5, what="three connections recorded")
    assert r.messages() == []


def test_drop_during_data_first_time_only(receiver_factory):
    r = receiver_factory("127.0.0.2", drop_during_data=1, drop_after_bytes=4096)
    big = make_message("big", body=[f"line {i:06d} " + "x" * 60 for i in range(20000)])  # ~1.5 MB
    with smtp("127.0.0.2", r.port) as s:
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            s.sendmail("a@src.test", ["x@d1.test"], big)
    with smtp("127.0.0.2", r.port) as s:
        assert s.sendmail("a@src.test", ["x@d1.test"], big) == {}
    dropped, accepted = r.transactions()
    assert dropped["status"] == "dropped" and dropped["reply"] is None and dropped["id"] is None
    assert 4096 <= dropped["size"] < len(big), "closed mid-body, not after it"
    assert big.startswith(dropped["body"])
    assert accepted["status"] == "accepted" and accepted["body"] == big
    assert [c["reason"] for c in r.connections()] == ["dropped", "quit"]
    assert [m["id"] for m in r.messages()] == ["R1"]


# --------------------------------------------------------------------------
# Extension and reply-shape scripts
# --------------------------------------------------------------------------


def test_no_pipelining_and_a_pipelining_client_is_caught(receiver_factory):
    r = receiver_factory("127.0.0.2", no_pipelining=True, check_clean=False)
    with smtp("127.0.0.2", r.port) as s:
        s.ehlo()
        assert not s.has_extn("pipelining") and s.has_extn("size")
        assert s.sendmail("a@src.test", ["x@d1.test"], make_message()) == {}
    assert r.violations() == []  # lock-step smtplib is fine
    with raw("127.0.0.2", r.port) as c:
        c.greet()
        c.send("MAIL FROM:<a@src.test>\r\nRCPT TO:<x@d1.test>\r\n")
        assert [x.code for x in c.replies(2)] == [250, 250]
    assert any("PIPELINING was not advertised" in v for v in r.violations()), r.violations()


def test_no_ehlo_forces_helo(receiver_factory):
    r = receiver_factory("127.0.0.2", no_ehlo=True)
    with smtp("127.0.0.2", r.port) as s:
        assert s.sendmail("a@src.test", ["x@d1.test"], TRICKY) == {}  # smtplib falls back to HELO
        assert s.ehlo_resp == b"5.5.1 Error: command not implemented" and s.does_esmtp is False
        assert s.docmd("MAIL FROM:<a@src.test> SIZE=100") == (555, b"5.5.4 MAIL parameters after HELO (no ESMTP)")
    (m,) = r.messages()
    assert m["esmtp"] is False and m["helo"] == CLIENT_HELO and m["body"] == TRICKY
    assert r.commands("EHLO") and r.commands("HELO")


def test_multiline_replies(receiver_factory):
    r = receiver_factory("127.0.0.2", multiline=True)
    with raw("127.0.0.2", r.port) as c:
        b = c.banner()
        assert b.code == 220 and len(b.lines) == 3
        assert b.raw.startswith(b"220-") and b.raw.count(b"\r\n") == 3
        assert len(c.ehlo().lines) >= 3
        mail = c.cmd("MAIL FROM:<a@src.test>")
        assert mail.full_lines == ["250-2.1.0 Ok", "250-2.1.0 (multiline reply, second line)",
                                   "250 2.1.0 (multiline reply, last line)"]
        assert len(c.cmd("RCPT TO:<x@d1.test>").lines) == 3
        data = c.cmd("DATA")
        assert data.code == 354 and len(data.lines) == 3
        c.send(b"Subject: m\r\n\r\nhi\r\n.\r\n")
        final = c.reply()
        assert final.code == 250 and len(final.lines) == 3 and final.lines[0] == "2.0.0 Ok: queued as R1"
    with smtp("127.0.0.2", r.port) as s:  # a real client copes
        assert s.sendmail("a@src.test", ["x@d1.test"], make_message()) == {}
    assert len(r.messages()) == 2


def test_slow_final_reply_beyond_the_client_timeout(receiver_factory):
    delay_ms = int(scaled(1.5) * 1000)  # the client waits scaled(0.4) s
    r = receiver_factory("127.0.0.2", slow_reply={"data_end": delay_ms}, slow_reply_count=1)
    with raw("127.0.0.2", r.port, timeout=0.4) as c:
        c.greet()
        for cmd in ("MAIL FROM:<a@src.test>", "RCPT TO:<x@d1.test>", "DATA"):
            c.cmd(cmd)
        c.send(b"Subject: slow\r\n\r\nbody\r\n.\r\n")
        t0 = time.monotonic()
        with pytest.raises(socket.timeout):
            c.reply(timeout=0.4)
        assert time.monotonic() - t0 < delay_ms / 1000
    # The client gave up and closed; the receiver still took the message.
    (m,) = wait_for(lambda: r.messages(), 5, what="the slow message recorded")
    assert m["reply_sent"] is False and m["body"] == b"Subject: slow\r\n\r\nbody\r\n"
    assert r.connections()[0]["commands"][-1]["delayed_ms"] == delay_ms
    # Only the first one was slow.
    with smtp("127.0.0.2", r.port, timeout=1.0) as s:
        t0 = time.monotonic()
        assert s.sendmail("a@src.test", ["x@d1.test"], make_message()) == {}
        assert time.monotonic() - t0 < delay_ms / 1000
    assert r.messages()[1]["reply_sent"] is True


def test_slow_greeting_every_time(receiver_factory):
    r = receiver_factory("127.0.0.2", slow_reply={"greeting": 300, "mail": 200})
    for _ in range(2):
        t0 = time.monotonic()
        with smtp("127.0.0.2", r.port) as s:
            assert time.monotonic() - t0 >= 0.29
            t1 = time.monotonic()
            assert s.sendmail("a@src.test", ["x@d1.test"], make_message()) == {}
            assert time.monotonic() - t1 >= 0.19


def test_max_connections_and_peak(receiver_factory):
    r = receiver_factory("127.0.0.2", max_connections=2)
    a = raw("127.0.0.2", r.port)
    b = raw("127.0.0.2", r.port)
    try:
        a.greet()
        b.greet()
        with raw("127.0.0.2", r.port) as c:
            assert str(c.banner()) == f"421 4.7.0 {r.hostname} Error: too many connections"
            c.wait_closed()
        assert r.peak_connections() == 3 and r.open_connections() == 2
        a.cmd("QUIT")
        a.wait_closed()
        wait_for(lambda: r.open_connections() == 1, 5, what="the first connection closed")
        with raw("127.0.0.2", r.port) as d:
            d.greet()
            assert d.cmd("QUIT").code == 221
    finally:
        a.close()
        b.close()
    assert [c["refused"] for c in r.connections()] == [None, None, "max-connections", None]
    assert [c["open"] for c in r.connections()] == [1, 2, 3, 2]


def test_concurrent_clients_peak(receiver_factory):
    """8 threads × 5 messages with smtplib; every message arrives once."""
    r = receiver_factory("127.0.0.2")
    errors = []
    barrier = threading.Barrier(8, timeout=scaled(10))

    def client(k):
        try:
            with smtp("127.0.0.2", r.port) as s:
                s.ehlo()
                barrier.wait()
                for i in range(5):
                    s.sendmail("a@src.test", [f"u{k}-{i}@d1.test"], make_message(f"m {k} {i}"))
                barrier.wait()  # all 8 still open here
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=scaled(30))
    assert not errors, errors
    msgs = r.messages()
    assert sorted(m["rcpts"][0] for m in msgs) == sorted(f"u{k}-{i}@d1.test" for k in range(8) for i in range(5))
    assert r.peak_connections() == 8
    assert len({m["id"] for m in msgs}) == 40


def test_idle_timeout(receiver_factory):
    r = receiver_factory("127.0.0.2", idle_timeout_s=0.3)
    with raw("127.0.0.2", r.port) as c:
        c.greet()
        assert str(c.reply(timeout=3)) == f"421 4.4.2 {r.hostname} Error: timeout exceeded"
        c.wait_closed()
    wait_for(lambda: r.connections()[0]["reason"] == "idle-timeout", 3, what="idle-timeout recorded")


def test_two_hosts_one_port(receiver_factory):
    r2 = receiver_factory("127.0.0.2")
    r3 = receiver_factory("127.0.0.3", permfail="*")
    assert r2.port == r3.port == receiver_factory.port
    with smtp("127.0.0.2", r2.port) as s:
        assert s.sendmail("a@src.test", ["x@d1.test"], make_message()) == {}
    with smtp("127.0.0.3", r3.port) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("a@src.test", ["x@d1.test"], make_message())
    assert r2.messages()[0]["local"] == f"127.0.0.2:{r2.port}"
    assert r3.connections()[0]["local"] == f"127.0.0.3:{r3.port}"
    assert r3.messages() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.4", r2.port), timeout=2)


def test_receiver_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="unknown receiver options"):
        ScriptedReceiver(tmp_path, "127.0.0.2", 1, tempfail_frist=True)
    with pytest.raises(ValueError, match="stage"):
        ScriptedReceiver(tmp_path, "127.0.0.2", 1, slow_reply={"dot": 100})
    with pytest.raises(ValueError, match="NNN text"):
        ScriptedReceiver(tmp_path, "127.0.0.2", 1, data_reply="busy")
    with pytest.raises(ValueError, match="count option"):
        ScriptedReceiver(tmp_path, "127.0.0.2", 1, connect_421=-3)


def test_receiver_port_in_use_is_a_clear_error(tmp_path):
    port = free_mx_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.2", port))
        blocker.listen(1)
        with pytest.raises(PeerError, match="cannot listen"):
            ScriptedReceiver(tmp_path, "127.0.0.2", port).start()


def test_factory_reports_a_dead_receiver_and_violations(tmp_path):
    f = ReceiverFactory(tmp_path, free_mx_port())
    dead = f("127.0.0.2")
    dirty = f("127.0.0.3")
    os.kill(dead.proc.pid, 9)
    dead.proc.wait(timeout=5)
    with raw("127.0.0.3", dirty.port) as c:
        c.banner()
        c.send(b"HELO x\n")
        c.reply()
    problems = f.finish(failed=False)
    assert len(problems) == 2, problems
    assert "died" in problems[0] and "violations" in problems[1]
    assert not dead.alive() and not dirty.alive()


# --------------------------------------------------------------------------
# sluice-sink and the whole world
# --------------------------------------------------------------------------


def test_sink_on_127_0_0_2_stores_messages(sink_factory):
    sink = sink_factory("127.0.0.2", script="match=*@slow.test action=delay=100\n")
    sent = [make_message(f"s{i}", body=[".dot", f"n {i}"]) for i in range(3)]
    with smtp("127.0.0.2", sink.port) as s:
        for i, msg in enumerate(sent):
            rcpts = [f"u{i}@d1.test"] + (["x@slow.test"] if i == 2 else [])
            assert s.sendmail("a@src.test", rcpts, msg) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("a@src.test", ["tempfail@d1.test"], make_message())
    assert sink.stored() == sent
    st = sink.stats()
    assert st["messages"] == 3 and st["tempfail"] == 1 and st["delayed"] == 1
    assert st["domains"]["d1.test"]["messages"] == 3
    assert sink.peak_connections() == 1


def test_delivery_world(delivery_world):
    world = delivery_world(
        mx={"d1.test": ["127.0.0.2", "127.0.0.3"], "d2.test": [(10, "127.0.0.4"), (20, "127.0.0.5")],
            "null.test": None},
        implicit={"d3.test": "127.0.0.6"},
        receivers={"127.0.0.3": dict(tempfail_first=True)},
        sinks={"127.0.0.5": {}},
        down=["127.0.0.4"],
    )
    dns = world.dns
    assert world.sluice_args() == ["--dns", dns.spec, "--mx-port", str(world.port)]
    toml = tomllib.loads(world.delivery_toml(dns=["127.0.0.1:9", dns.spec], dns_timeout="500ms", dns_tries=1))
    assert toml == {"delivery": {"dns": ["127.0.0.1:9", dns.spec], "mx_port": world.port, "dns_timeout": "500ms",
                                 "dns_tries": 1}}
    assert dns.query("d1.test", "MX").mx() == [(10, "mx-127-0-0-2.test"), (10, "mx-127-0-0-3.test")]
    assert dns.query("d2.test", "MX").mx() == [(10, "mx-127-0-0-4.test"), (20, "mx-127-0-0-5.test")]
    assert dns.query("null.test", "MX").mx() == [(0, ".")]
    assert dns.query("d3.test", "MX").answers == [] and dns.query("d3.test", "A").addresses() == ["127.0.0.6"]
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
        assert dns.query(default_mx_name(ip), "A").addresses() == [ip]
    assert set(world.peers) == {"127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6"}
    assert isinstance(world["127.0.0.3"], ScriptedReceiver)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.4", world.port), timeout=2)
    # What the relay will do, by hand: resolve, connect to the MX on the port.
    with smtp("127.0.0.3", world.port) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused):  # tempfail_first there
            s.sendmail("a@src.test", ["r@d1.test"], make_message("first"))
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.6"):
        with smtp(ip, world.port) as s:
            assert s.sendmail("a@src.test", ["r@d1.test"], make_message(ip)) == {}
    with smtp("127.0.0.5", world.port) as s:
        s.sendmail("a@src.test", ["r@d2.test"], make_message("sink"))
    msgs = world.wait_messages(3)
    assert sorted(m["host"] for m in msgs) == ["127.0.0.2", "127.0.0.3", "127.0.0.6"]
    assert len(world.delivered_to("R@d1.test")) == 3
    assert world["127.0.0.5"].stored() == [make_message("sink")]
    world.assert_clean()
