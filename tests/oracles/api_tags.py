#!/usr/bin/env python3
"""A service made through the API, and its tags, for tests/auth.rs's aws:ResourceTag test.

    api_tags.py create ENDPOINT REGION NAME LISTENER_PORT POLICY_JSON
        CreateService (authType AWS_IAM), PutAuthPolicy, CreateListener (HTTP on
        LISTENER_PORT, fixed response 204); prints {"id", "arn", "tags"}.
    api_tags.py tag ENDPOINT REGION ARN KEY VALUE      TagResource, then ListTagsForResource
    api_tags.py untag ENDPOINT REGION ARN KEY          UntagResource, then ListTagsForResource
    api_tags.py list ENDPOINT REGION ARN               ListTagsForResource

Each prints its JSON summary last (`tags`: what ListTagsForResource answers).
"""

import sys

import lattice as L


def tags(c, arn):
    return c.list_tags_for_resource(resourceArn=arn)["tags"]


def main():
    command, endpoint, region = sys.argv[1:4]
    args = sys.argv[4:]
    c = L.client(endpoint, region)
    if command == "create":
        name, port, policy = args[0], int(args[1]), args[2]
        svc = c.create_service(name=name, authType="AWS_IAM")
        L.check_arn(region, "service", svc)
        put = c.put_auth_policy(resourceIdentifier=svc["id"], policy=policy)
        assert put["state"] == "Active", put
        c.create_listener(serviceIdentifier=svc["id"], name="http", protocol="HTTP", port=port,
                          defaultAction={"fixedResponse": {"statusCode": 204}})
        L.emit({"id": svc["id"], "arn": svc["arn"], "tags": tags(c, svc["arn"])})
    elif command == "tag":
        arn, key, value = args
        c.tag_resource(resourceArn=arn, tags={key: value})
        L.emit({"tags": tags(c, arn)})
    elif command == "untag":
        arn, key = args
        c.untag_resource(resourceArn=arn, tagKeys=[key])
        L.emit({"tags": tags(c, arn)})
    elif command == "list":
        L.emit({"tags": tags(c, args[0])})
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
