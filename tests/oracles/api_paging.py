#!/usr/bin/env python3
"""120 target groups paged through ListTargetGroups (§9: maxResults 1-100 and nextToken).

    api_paging.py ENDPOINT REGION

Creates 60 INSTANCE groups in the config's VPC (its id learnt from a VPC association) and 60
LAMBDA groups, then pages through them with boto3's paginator (PageSize 7) and by hand
(maxResults 25 and nextToken): every group is seen exactly once, no page is over its size,
the type and VPC filters page too; maxResults over 100 and a forged nextToken are refused.
"""

import sys

import lattice as L

N = 120


def check_seen(how, seen, made):
    """Each group once (the file's own groups, if any, come along)."""
    assert len(seen) == len(set(seen)), f"{how}: {len(seen) - len(set(seen))} ids seen twice"
    mine = [i for i in seen if i in made]
    assert sorted(mine) == sorted(made), f"{how}: {len(mine)} of the {N} groups seen"


def main():
    endpoint, region = sys.argv[1:3]
    c = L.client(endpoint, region)
    sn = c.create_service_network(name="paging-network")
    assoc = c.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier="client-vpc")
    vpc_id = c.get_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=assoc["id"])["vpcId"]

    made = {}
    for i in range(N):
        if i % 2 == 0:
            tg = c.create_target_group(name=f"page-{i:03d}", type="INSTANCE",
                                       config={"port": 8000 + i, "protocol": "HTTP", "vpcIdentifier": vpc_id})
        else:
            tg = c.create_target_group(name=f"page-{i:03d}", type="LAMBDA")
        L.check_arn(region, "targetgroup", tg)
        made[tg["id"]] = tg["name"]
    assert len(made) == N, "ids are not unique"

    # boto3's paginator.
    seen, pages = [], 0
    for page in c.get_paginator("list_target_groups").paginate(PaginationConfig={"PageSize": 7}):
        pages += 1
        assert len(page["items"]) <= 7, page
        seen += [tg["id"] for tg in page["items"]]
        assert pages <= 40, "the paginator does not end"
    check_seen("paginator", seen, made)
    assert pages >= N // 7, pages

    # By hand.
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"maxResults": 25}
        if token:
            kwargs["nextToken"] = token
        page = c.list_target_groups(**kwargs)
        pages += 1
        assert len(page["items"]) <= 25, page
        for tg in page["items"]:
            assert tg["id"] not in made or tg["name"] == made[tg["id"]], tg
            assert tg["arn"].endswith("/" + tg["id"]), tg
        seen += [tg["id"] for tg in page["items"]]
        token = page.get("nextToken")
        if not token:
            break
        assert pages <= 10, "nextToken does not end"
    check_seen("nextToken", seen, made)
    assert pages == -(-len(seen) // 25), pages

    # Filters page too.
    lam = [tg for page in c.get_paginator("list_target_groups").paginate(
        targetGroupType="LAMBDA", PaginationConfig={"PageSize": 9}) for tg in page["items"]]
    assert sorted(tg["name"] for tg in lam if tg["id"] in made) == \
        sorted(n for n in made.values() if int(n[5:]) % 2 == 1), lam
    assert all(tg["type"] == "LAMBDA" for tg in lam), lam
    inst = [tg for page in c.get_paginator("list_target_groups").paginate(
        vpcIdentifier=vpc_id, PaginationConfig={"PageSize": 11}) for tg in page["items"]]
    assert len([tg for tg in inst if tg["id"] in made]) == N // 2 and all(tg["vpcIdentifier"] == vpc_id for tg in inst), inst

    # Out of range: the model says 1-100.
    r = L.expect_error("ValidationException", 400, c.list_target_groups, maxResults=101)
    assert any(f["name"] == "maxResults" for f in r.get("fieldList", [])), r
    L.expect_error("ValidationException", 400, c.list_target_groups, maxResults=10,
                   nextToken="bm90LWEtdG9rZW4")
    L.emit({"created": N, "pages_by_hand": pages})


if __name__ == "__main__":
    main()
