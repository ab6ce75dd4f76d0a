#!/usr/bin/env python3
"""Writes as fast as they are acknowledged, recording each acknowledged one, until Trellis
stops answering (tests/api.rs kills it with SIGKILL mid-burst); then checks after a restart
that every acknowledged change is there (issue 16: durability).

    api_burst.py run    ENDPOINT REGION ACK_FILE MAX_SECONDS
        Alternates CreateTargetGroup (LAMBDA, burst-N) and TagResource on the group just made;
        after each acknowledged call appends one line to ACK_FILE (flushed and fsynced):
        "tg NAME ID ARN" or "tag ARN KEY VALUE". Stops at the first failed call or after
        MAX_SECONDS; prints how many calls were acknowledged.
    api_burst.py verify ENDPOINT REGION ACK_FILE
        Every acknowledged group exists with its id and ARN, every acknowledged tag is on it;
        at most one group beyond them (the call in flight when Trellis died).
"""

import os
import sys
import time

import botocore.exceptions

import lattice as L


def run(c, ack_file, max_seconds):
    deadline = time.monotonic() + max_seconds
    acked, failure = 0, None
    with open(ack_file, "a") as f:
        def ack(line):
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        i = 0
        while time.monotonic() < deadline and i < 100000:
            try:
                tg = c.create_target_group(name=f"burst-{i}", type="LAMBDA")
                ack(f"tg burst-{i} {tg['id']} {tg['arn']}")
                acked += 1
                c.tag_resource(resourceArn=tg["arn"], tags={"burst": str(i)})
                ack(f"tag {tg['arn']} burst {i}")
                acked += 1
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                failure = f"{type(e).__name__}: {e}"
                break
            i += 1
    return {"acked": acked, "stopped_by": failure}


def verify(c, ack_file):
    groups, tags = {}, {}
    with open(ack_file) as f:
        for line in f:
            parts = line.split()
            if parts[0] == "tg":
                groups[parts[1]] = (parts[2], parts[3])
            elif parts[0] == "tag":
                tags.setdefault(parts[1], {})[parts[2]] = parts[3]
    assert groups, "nothing was acknowledged"
    listed = [tg for page in c.get_paginator("list_target_groups").paginate() for tg in page["items"]]
    by_name = {tg["name"]: tg for tg in listed if tg["name"].startswith("burst-")}
    missing = [name for name in groups if name not in by_name]
    assert not missing, f"acknowledged but lost: {missing}"
    for name, (tg_id, tg_arn) in groups.items():
        assert (by_name[name]["id"], by_name[name]["arn"]) == (tg_id, tg_arn), (name, by_name[name])
    for tg_arn, want in tags.items():
        have = c.list_tags_for_resource(resourceArn=tg_arn)["tags"]
        assert all(have.get(k) == v for k, v in want.items()), f"tags of {tg_arn}: {have}, acknowledged {want}"
    extra = sorted(set(by_name) - set(groups))
    assert len(extra) <= 1, f"groups nobody was told of: {extra}"
    return {"groups": len(groups), "tags": sum(len(t) for t in tags.values()), "unacknowledged_kept": extra}


def main():
    command, endpoint, region, ack_file = sys.argv[1:5]
    c = L.client(endpoint, region)
    if command == "run":
        L.emit(run(c, ack_file, float(sys.argv[5])))
    else:
        L.emit(verify(c, ack_file))


if __name__ == "__main__":
    main()
