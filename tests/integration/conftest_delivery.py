"""Fixtures of the delivery tests: real DNS and SMTP peers on loopback.

Imported by conftest.py, so every test module can use them. The peers and
their API are described at the top of delivery_peers.py.

    dns_server        DnsServer: dnsmasq, running (empty zone) at test start
    dead_dns          DeadDns: a resolver address that never answers
    mx_port           the one free port every peer of the test listens on
    receiver_factory  receiver_factory("127.0.0.2", **behaviour) -> ScriptedReceiver (started)
    sink_factory      sink_factory("127.0.0.2", script=..., args=[...]) -> SinkPeer (started)
    delivery_world    delivery_world(mx={...}, receivers={...}) -> DeliveryWorld

Every process is stopped by its PID at teardown. A receiver that died during
the test, or (for a passing test) saw a protocol violation by the client,
fails the test at teardown; receiver_factory(..., check_clean=False) allows
violations for tests that provoke them.
"""

from __future__ import annotations

import pytest

from delivery_peers import (
    DeadDns,
    DeliveryWorld,
    DnsServer,
    ScriptedReceiver,
    SinkPeer,
    default_mx_name,
    free_mx_port,
    parse_mx_spec,
)

__all__ = ["dns_server", "dead_dns", "mx_port", "receiver_factory", "sink_factory", "delivery_world"]


def _test_failed(request) -> bool:
    return any(getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
               for w in ("setup", "call"))


@pytest.fixture
def dns_server(tmp_path, request):
    """dnsmasq serving the zone `test`, started with no records (all NXDOMAIN).
    Add records, then dns_server.apply()."""
    dns = DnsServer(tmp_path / "dns")
    dns.apply()
    yield dns
    dns.stop()
    if _test_failed(request):
        print(f"--- dnsmasq log ({dns.log_path}) ---")
        print(dns.log_text()[-4000:])


@pytest.fixture
def dead_dns():
    d = DeadDns()
    yield d
    d.close()


@pytest.fixture
def mx_port() -> int:
    return free_mx_port()


class ReceiverFactory:
    """Starts ScriptedReceivers (own subprocesses) on 127.0.0.x:mx_port."""

    def __init__(self, workdir, port: int):
        self.workdir = workdir
        self.port = port
        self.peers: list = []

    def __call__(self, host: str = "127.0.0.2", port: int | None = None, *, check_clean: bool = True,
                 **behaviour) -> ScriptedReceiver:
        n = len(self.peers)
        r = ScriptedReceiver(self.workdir / f"receiver{n}-{host}", host, port or self.port, **behaviour)
        r.check_clean = check_clean
        self.peers.append(r)
        return r.start()

    def finish(self, failed: bool) -> list:
        problems = []
        for r in self.peers:
            if r.proc is not None and r.proc.poll() is not None and not r.expected_exit:
                problems.append(f"receiver {r.host}:{r.port} died with {r.proc.returncode}")
            r.stop()
            if r.errors():
                problems.append(f"receiver {r.host}:{r.port} internal errors: {r.errors()[:3]}")
            elif not failed and r.check_clean and r.violations():
                problems.append(f"receiver {r.host}:{r.port} saw protocol violations: {r.violations()[:10]}")
        if failed or problems:
            for r in self.peers:
                print(f"--- receiver {r.host}:{r.port} stderr ---\n{r.stderr_tail()}")
        return problems


class SinkFactory:
    """Starts sluice-sink processes on 127.0.0.x:mx_port with --store."""

    def __init__(self, workdir, port: int):
        self.workdir = workdir
        self.port = port
        self.peers: list = []

    def __call__(self, host: str = "127.0.0.2", port: int | None = None, **kwargs) -> SinkPeer:
        n = len(self.peers)
        s = SinkPeer(self.workdir / f"sink{n}-{host}", host, port or self.port, **kwargs)
        self.peers.append(s)
        return s.start()

    def finish(self, failed: bool) -> list:
        problems = []
        for s in self.peers:
            if s.proc is not None and s.proc.poll() is not None and not s.expected_exit:
                problems.append(f"sluice-sink {s.host}:{s.port} died with {s.proc.returncode}")
            s.stop()
        if failed or problems:
            for s in self.peers:
                print(f"--- sluice-sink {s.host}:{s.port} stderr ---\n{s.stderr_tail()}")
        return problems


@pytest.fixture
def receiver_factory(tmp_path, mx_port, request):
    f = ReceiverFactory(tmp_path, mx_port)
    yield f
    problems = f.finish(_test_failed(request))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def sink_factory(tmp_path, mx_port, request):
    f = SinkFactory(tmp_path, mx_port)
    yield f
    problems = f.finish(_test_failed(request))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def delivery_world(dns_server, receiver_factory, sink_factory, mx_port):
    """Builds DNS + peers in one call:

        world = delivery_world(
            mx={"d1.test": ["127.0.0.2", "127.0.0.3"],           # both preference 10
                "d2.test": [(10, "127.0.0.4"), (20, "127.0.0.5")],
                "null.test": None},                              # RFC 7505 null MX
            implicit={"d3.test": "127.0.0.6"},                   # A record only, no MX
            receivers={"127.0.0.3": dict(tempfail_first=True)},  # behaviour per address
            default=dict(),                                      # behaviour elsewhere
            sinks={"127.0.0.5": dict(script="...")},             # sluice-sink there
            down=["127.0.0.4"])                                  # in DNS, nothing listening
        sluice_factory(args=[..., *world.sluice_args()])

    Every address named gets a ScriptedReceiver unless it is in `sinks` or
    `down`. MX hosts are named mx-127-0-0-2.test etc. (one A record each).
    """

    def build(mx: dict | None = None, *, implicit: dict | None = None, receivers: dict | None = None,
              default: dict | None = None, sinks: dict | None = None, down=()) -> DeliveryWorld:
        mx = mx or {}
        implicit = implicit or {}
        receivers = receivers or {}
        sinks = sinks or {}
        ips: list = []

        def note(ip):
            if ip not in ips:
                ips.append(ip)

        for domain, spec in mx.items():
            recs = parse_mx_spec(domain, spec)
            if recs == "null":
                dns_server.null_mx(domain)
                continue
            dns_server.mx(domain, [(pref, default_mx_name(ip)) for pref, ip in recs])
            for _pref, ip in recs:
                note(ip)
        for domain, ip in implicit.items():
            dns_server.a(domain, ip)
            note(ip)
        for ip in list(receivers) + list(sinks) + list(down):
            note(ip)
        for ip in ips:
            (dns_server.aaaa if ":" in ip else dns_server.a)(default_mx_name(ip), ip)
        unknown = (set(receivers) & set(sinks)) | (set(receivers) & set(down)) | (set(sinks) & set(down))
        if unknown:
            raise ValueError(f"addresses given more than one role: {sorted(unknown)}")
        dns_server.apply()
        peers = {}
        for ip in ips:
            if ip in down:
                continue
            if ip in sinks:
                peers[ip] = sink_factory(ip, **sinks[ip])
            else:
                peers[ip] = receiver_factory(ip, **{**(default or {}), **receivers.get(ip, {})})
        return DeliveryWorld(dns_server, mx_port, peers, down)

    return build
