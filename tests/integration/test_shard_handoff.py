"""Every queued (message, domain) pair reaches the shard that owns the
domain through the cross-shard mailboxes, for new and for recovered mail,
and whatever the shard count was when the spool was written."""

import re

import pytest

SUMMARY = re.compile(r"shard (\d+) owns (\d+) destination domains: (\d+) message jobs, "
                     r"(\d+) recipients queued")


def owned(stderr: str):
    """{shard: (domains, jobs, recipients)} from the last stop's report."""
    result = {}
    for m in SUMMARY.finditer(stderr):
        result[int(m.group(1))] = tuple(int(g) for g in m.groups()[1:])
    return result


def send_batch(d, messages, domains, per_message):
    expected_jobs = 0
    with d.smtp() as s:
        for i in range(messages):
            rcpts = [f"u{j}@d{(i + j) % domains}.example" for j in range(per_message)]
            s.sendmail("sender@example.com", rcpts, f"Subject: {i}\r\n\r\nbody\r\n")
            expected_jobs += len({r.split("@")[1] for r in rcpts})
    return expected_jobs


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_new_and_recovered_mail_reaches_owner_shards(sluice_factory, tmp_path, shards):
    d = sluice_factory(shards=shards)
    jobs = send_batch(d, messages=40, domains=9, per_message=4)
    assert d.stop() == 0
    report = owned(d.stderr_since_start())
    assert len(report) == shards
    assert sum(r[0] for r in report.values()) == 9  # each domain owned exactly once
    assert sum(r[1] for r in report.values()) == jobs
    assert sum(r[2] for r in report.values()) == 40 * 4

    # Restart on the same spool with another shard count: recovered mail is
    # announced to the new owners.
    again = sluice_factory(spool=d.spool, shards=3)
    assert again.stop() == 0
    report = owned(again.stderr_since_start())
    assert len(report) == 3
    assert sum(r[0] for r in report.values()) == 9
    assert sum(r[1] for r in report.values()) == jobs
    assert sum(r[2] for r in report.values()) == 40 * 4
