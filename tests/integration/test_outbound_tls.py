"""Outbound STARTTLS (issue 6, outbound half): the relay delivers to a real
TLS receiver, a second Sluice with a certificate made by `openssl req` at test
time, found through dnsmasq. Policies: opportunistic (default), required,
verify (chain and host name), disabled; the accounting record says whether
TLS was used, with the version and cipher.
"""

from __future__ import annotations

import time

import pytest

from sluice_harness import make_message, scaled, wait_for
from tls_peers import make_cert, tls_args

MX_HOST = "mx-127-0-0-2.test"
SENDER = "alice@snd.test"


def delivered_records(relay, kind):
    return [r for r in relay.log_records() if r.get("type") == kind]


def send(relay, rcpt: str, subject: str) -> str:
    with relay.smtp() as c:
        c.ehlo("client.sluice.test")
        assert c.mail(SENDER)[0] == 250
        assert c.rcpt(rcpt)[0] == 250
        code, resp = c.data(make_message(subject, ["Hello over TLS?"], sender=SENDER, to=rcpt))
        assert code == 250, (code, resp)
        return resp.decode().split()[-1]


@pytest.fixture
def tls_receiver(sluice_factory, tmp_path):
    """A receiving Sluice on 127.0.0.2 with a certificate for MX_HOST (or
    without one: tls_receiver(tls=False))."""

    def start(tls: bool = True):
        args = []
        cert = None
        if tls:
            cert, key = make_cert(tmp_path / "certs", cn=MX_HOST)
            args = tls_args(cert, key)
        receiver = sluice_factory(listen_hosts=("127.0.0.2",), args=args, shards=1)
        return receiver, cert

    return start


def start_relay(sluice_factory, dns_server, receiver, *, policy=None, ca_file=None, extra=""):
    dns_server.a(MX_HOST, "127.0.0.2")
    dns_server.apply()
    port = receiver.ports["127.0.0.2"]
    delivery = '[delivery]\nidle_connection = "200ms"\n'
    if policy:
        delivery += f'tls = "{policy}"\n'
    if ca_file:
        delivery += f'tls_ca_file = "{ca_file}"\n'
    config = delivery + extra + '[retry]\ninitial = "1h"\n'
    return sluice_factory(delivery=True, config=config,
                          args=["--dns", dns_server.spec, "--route", f"d1.test={MX_HOST}:{port}"])


def test_opportunistic_starttls_is_used_when_offered(sluice_factory, dns_server, tls_receiver):
    receiver, _ = tls_receiver()
    relay = start_relay(sluice_factory, dns_server, receiver)
    qid = send(relay, "bob@d1.test", "opportunistic")
    wait_for(lambda: delivered_records(relay, "Delivery"), 15, what="the delivery")
    (d,) = delivered_records(relay, "Delivery")
    assert d["id"] == qid and d["mx"] == MX_HOST
    assert d["tls"].startswith("TLSv1."), d
    (r,) = delivered_records(receiver, "Reception")
    assert r["protocol"] == "ESMTPS", r


def test_opportunistic_without_starttls_goes_in_the_clear(sluice_factory, dns_server, tls_receiver):
    receiver, _ = tls_receiver(tls=False)
    relay = start_relay(sluice_factory, dns_server, receiver)
    send(relay, "bob@d1.test", "plain")
    wait_for(lambda: delivered_records(relay, "Delivery"), 15, what="the delivery")
    (d,) = delivered_records(relay, "Delivery")
    assert d["tls"] == ""
    (r,) = delivered_records(receiver, "Reception")
    assert r["protocol"] == "ESMTP"


def test_required_tls_not_offered_is_a_transient_failure(sluice_factory, dns_server, tls_receiver):
    receiver, _ = tls_receiver(tls=False)
    relay = start_relay(sluice_factory, dns_server, receiver, policy="required")
    qid = send(relay, "bob@d1.test", "must be encrypted")
    wait_for(lambda: delivered_records(relay, "TransientFailure"), 15, what="the deferral")
    (t,) = delivered_records(relay, "TransientFailure")
    assert t["id"] == qid and t["enhanced"].startswith("4.7."), t
    time.sleep(0.5)
    assert not delivered_records(receiver, "Reception"), "sent in the clear despite tls = required"
    assert qid in relay.queue_ids()


def test_verify_rejects_an_untrusted_certificate(sluice_factory, dns_server, tls_receiver):
    receiver, _ = tls_receiver()
    relay = start_relay(sluice_factory, dns_server, receiver, policy="verify")
    qid = send(relay, "bob@d1.test", "verify me")
    wait_for(lambda: delivered_records(relay, "TransientFailure"), 15, what="the deferral")
    (t,) = delivered_records(relay, "TransientFailure")
    assert t["id"] == qid and t["enhanced"] == "4.7.5", t
    assert "TLS" in t["text"]
    assert not delivered_records(receiver, "Reception")


def test_verify_accepts_a_trusted_certificate_for_the_mx_name(sluice_factory, dns_server,
                                                              tls_receiver):
    receiver, cert = tls_receiver()
    relay = start_relay(sluice_factory, dns_server, receiver, policy="verify", ca_file=cert)
    send(relay, "bob@d1.test", "verified")
    wait_for(lambda: delivered_records(relay, "Delivery"), 15, what="the delivery")
    (d,) = delivered_records(relay, "Delivery")
    assert d["tls"].startswith("TLSv1."), d


@pytest.mark.parametrize("policy", [None, "verify"], ids=["opportunistic", "verify"])
def test_next_connection_to_the_mx_resumes_the_tls_session(sluice_factory, dns_server,
                                                           tls_receiver, policy):
    # Three connections in sequence (each message after the previous
    # connection idled out): the first handshake is a full one, the later
    # ones offer the session the previous connection cached for this
    # address and MX name, and the receiver resumes it.
    receiver, cert = tls_receiver()
    relay = start_relay(sluice_factory, dns_server, receiver, policy=policy,
                        ca_file=cert if policy == "verify" else None)
    for n in range(1, 4):
        send(relay, f"bob{n}@d1.test", f"resume {n}")
        wait_for(lambda: len(delivered_records(relay, "Delivery")) == n, 15,
                 what=f"delivery {n}")
        time.sleep(scaled(1.0))  # idle_connection is 200 ms: the connection is gone
    records = sorted(delivered_records(relay, "Delivery"), key=lambda d: d["recipient"])
    assert [d["recipient"] for d in records] == ["bob1@d1.test", "bob2@d1.test", "bob3@d1.test"]
    for d in records:
        assert d["tls"].startswith("TLSv1."), d
    assert "tls_resumed" not in records[0], records[0]
    assert records[1].get("tls_resumed") is True, records[1]
    assert records[2].get("tls_resumed") is True, records[2]
    receptions = delivered_records(receiver, "Reception")
    assert len(receptions) == 3 and all(r["protocol"] == "ESMTPS" for r in receptions)


def test_per_domain_policy_disables_tls(sluice_factory, dns_server, tls_receiver):
    receiver, _ = tls_receiver()
    relay = start_relay(sluice_factory, dns_server, receiver, policy="required",
                        extra='[delivery.tls_policy]\n"d1.test" = "disabled"\n')
    send(relay, "bob@d1.test", "clear by policy")
    wait_for(lambda: delivered_records(relay, "Delivery"), 15, what="the delivery")
    (d,) = delivered_records(relay, "Delivery")
    assert d["tls"] == ""
    (r,) = delivered_records(receiver, "Reception")
    assert r["protocol"] == "ESMTP"


def test_bad_tls_policy_is_a_config_error(tmp_path, sluice_factory):
    import subprocess
    from sluice_harness import require_sluice_bin
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[delivery]\ntls = "sometimes"\n')
    r = subprocess.run([str(require_sluice_bin()), "check-config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "delivery.tls" in r.stderr and "unknown TLS policy" in r.stderr
