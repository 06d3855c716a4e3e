#!/usr/bin/env python3
"""Least-privilege and consistency check of infra/template.yaml.

Usage: python infra/check_template.py [path/to/template.yaml]

Needs only the standard library and PyYAML (a dependency of cfn-lint, so the
venv that runs cfn-lint has it). Exits 1 and lists every failed check, or
prints "template check: N checks passed".
"""

from __future__ import annotations

import json
import os
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("template check: PyYAML is missing (run with the cfn-lint venv's python)")


# ------------------------------------------------------------------ loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into long form."""


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node):
    key = "Ref" if suffix == "Ref" else "Condition" if suffix == "Condition" else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


# ------------------------------------------------------------------ expectations

FUNCTIONS = {
    # logical id: (function name suffix, cargo binary, log group)
    "IngestFunction": ("ingest", "ingest", "IngestLogGroup"),
    "WorkerFunction": ("worker", "worker", "WorkerLogGroup"),
    "DlqAlerterFunction": ("dlq-alerter", "dlq-alerter", "DlqAlerterLogGroup"),
}

# Exact permissions per function: resource logical id -> allowed actions.
POLICIES = {
    "IngestFunction": {
        "LeadsQueue": {"sqs:SendMessage"},
        "BulkQueue": {"sqs:SendMessage"},
        # Query: the status API reads every delivery of an event.
        "LedgerTable": {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"},
        # The console lists deliveries by status (the status index), nothing else of the index.
        "LedgerStatusIndex": {"dynamodb:Query"},
        "WebhookSecret": {"secretsmanager:GetSecretValue"},
        "StatusApiKeySecret": {"secretsmanager:GetSecretValue"},
        # Rate-limited alerts about leads rejected at ingest.
        "AlertsTopic": {"sns:Publish"},
        "AlertsKey": {"kms:GenerateDataKey", "kms:Decrypt"},
        # The vendors' secrets the config file's [sources.<name>] name.
        "SourceSecretArns": {"secretsmanager:GetSecretValue"},
    },
    "WorkerFunction": {
        "LeadsQueue": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        },
        "BulkQueue": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        },
        "LeadsDlq": {"sqs:SendMessage"},
        "LedgerTable": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            # a person's identities in one read
            "dynamodb:BatchGetItem",
        },
        # possible_duplicate alerts (one person, several CRM records)
        "AlertsTopic": {"sns:Publish"},
        "AlertsKey": {"kms:GenerateDataKey", "kms:Decrypt"},
        "HubSpotSecret": {"secretsmanager:GetSecretValue"},
        # an OAuth grant whose refresh token rotated is written back
        "ConnectionSecretArns": {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"},
    },
    "DlqAlerterFunction": {
        "LeadsDlq": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
        "BulkDlq": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
        # a lead redriven without a real attempt goes back on its lane's queue
        "LeadsQueue": {"sqs:SendMessage"},
        "BulkQueue": {"sqs:SendMessage"},
        "LedgerTable": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        "AlertsTopic": {"sns:Publish"},
        "AlertsKey": {"kms:GenerateDataKey", "kms:Decrypt"},
    },
}

# How a resource's ARN may be written: ("Ref",) or ("GetAtt", attribute).
ARN_FORMS = {
    "LeadsQueue": {("GetAtt", "Arn")},
    "LeadsDlq": {("GetAtt", "Arn")},
    "BulkQueue": {("GetAtt", "Arn")},
    "BulkDlq": {("GetAtt", "Arn")},
    "LedgerTable": {("GetAtt", "Arn")},
    # The ledger's status index: exactly !Sub ${LedgerTable.Arn}/index/status-updated_at-index.
    "LedgerStatusIndex": {("Sub",)},
    "WebhookSecret": {("Ref",), ("GetAtt", "Id")},
    "HubSpotSecret": {("Ref",), ("GetAtt", "Id")},
    "StatusApiKeySecret": {("Ref",), ("GetAtt", "Id")},
    "AlertsTopic": {("Ref",), ("GetAtt", "TopicArn")},
    "AlertsKey": {("GetAtt", "Arn")},
    # The secrets the config file's connections name (a parameter: exact ARNs, no wildcard).
    "ConnectionSecretArns": {("Ref",)},
    "SourceSecretArns": {("Ref",)},
}

# Conditions a policy statement may hang on.
CONDITIONAL_STATEMENTS = {"HasConnectionSecrets", "HasSourceSecrets"}

ENV = {
    "IngestFunction": {
        "LEADS_QUEUE_URL": {"Ref": "LeadsQueue"},
        "LEADS_DLQ_URL": {"Ref": "LeadsDlq"},
        "BULK_QUEUE_URL": {"Ref": "BulkQueue"},
        "LEDGER_TABLE": {"Ref": "LedgerTable"},
        "WEBHOOK_SECRET_ID": {"Ref": "WebhookSecret"},
        "STATUS_API_KEY_SECRET_ID": {"Ref": "StatusApiKeySecret"},
        "SECRET_TTL_SECONDS": "300",
        "ALERTS_TOPIC_ARN": {"Ref": "AlertsTopic"},
        "REJECTION_ALERT_WINDOW_SECONDS": {"Ref": "RejectionAlertWindowSeconds"},
        "LEADBRIDGE_CONFIG": {"Fn::If": ["HasConfigFile", "/opt/leadbridge.toml", ""]},
    },
    "WorkerFunction": {
        "LEADS_QUEUE_URL": {"Ref": "LeadsQueue"},
        "LEADS_DLQ_URL": {"Ref": "LeadsDlq"},
        "BULK_QUEUE_URL": {"Ref": "BulkQueue"},
        "LEDGER_TABLE": {"Ref": "LedgerTable"},
        "ALERTS_TOPIC_ARN": {"Ref": "AlertsTopic"},
        "LEADBRIDGE_CONFIG": {"Fn::If": ["HasConfigFile", "/opt/leadbridge.toml", ""]},
        "HUBSPOT_SECRET_ID": {"Ref": "HubSpotSecret"},
        "HUBSPOT_BASE_URL": {"Ref": "HubSpotBaseUrl"},
        "HUBSPOT_TIMEOUT_MS": "10000",
        "RETRY_BASE_MS": {"Ref": "RetryBaseMs"},
        "RETRY_CAP_MS": {"Ref": "RetryCapMs"},
        "RETRY_MAX_ATTEMPTS": {"Ref": "RetryMaxAttempts"},
        "SECRET_TTL_SECONDS": "300",
    },
    "DlqAlerterFunction": {
        "LEDGER_TABLE": {"Ref": "LedgerTable"},
        "ALERTS_TOPIC_ARN": {"Ref": "AlertsTopic"},
        "LEADS_QUEUE_URL": {"Ref": "LeadsQueue"},
        "LEADS_DLQ_URL": {"Ref": "LeadsDlq"},
        "BULK_QUEUE_URL": {"Ref": "BulkQueue"},
    },
}

PARAMETER_DEFAULTS = {
    "Prefix": "leadbridge",
    "AlertEmail": "",
    "HubSpotBaseUrl": "https://api.hubapi.com",
    "RetryBaseMs": 2000,
    "RetryCapMs": 3600000,
    "RetryMaxAttempts": 16,
    "LogLevel": "info",
    "UseConfigFile": "false",
    "ConnectionSecretArns": "",
    "RejectionAlertWindowSeconds": 900,
}


# ------------------------------------------------------------------ checker


class Checker:
    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
        return ok

    def eq(self, actual, expected, what: str) -> bool:
        return self.check(
            _norm(actual) == _norm(expected),
            f"{what}: expected {json.dumps(expected)}, got {json.dumps(actual, default=str)}",
        )


def _norm(v):
    """Compare numbers/booleans written as strings or not the same way."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower()
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def _as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _contains_star(v) -> bool:
    return "*" in json.dumps(v)


# ARNs written with !Sub that a policy may name: the exact string -> pseudo logical id.
SUB_ARNS = {
    "${LedgerTable.Arn}/index/status-updated_at-index": "LedgerStatusIndex",
}


def _arn_target(resource):
    """Logical id and form of an ARN reference, or None."""
    if isinstance(resource, dict) and len(resource) == 1:
        sub = resource.get("Fn::Sub")
        if isinstance(sub, str) and sub in SUB_ARNS:
            return SUB_ARNS[sub], ("Sub",)
        if "Ref" in resource and isinstance(resource["Ref"], str):
            return resource["Ref"], ("Ref",)
        att = resource.get("Fn::GetAtt")
        if isinstance(att, str):
            att = att.split(".", 1)
        if isinstance(att, list) and len(att) == 2:
            return att[0], ("GetAtt", att[1])
    return None


def _sub(s: str) -> dict:
    return {"Fn::Sub": s}


def check_template(t: dict, c: Checker) -> None:
    res = t.get("Resources", {})
    params = t.get("Parameters", {})
    glob = t.get("Globals", {}).get("Function", {})

    c.eq(t.get("Transform"), "AWS::Serverless-2016-10-31", "Transform")
    for name, default in PARAMETER_DEFAULTS.items():
        c.eq(params.get(name, {}).get("Default"), default, f"Parameters.{name}.Default")

    def props(logical_id: str, rtype: str) -> dict:
        r = res.get(logical_id)
        if not c.check(r is not None, f"resource {logical_id} is missing"):
            return {}
        c.eq(r.get("Type"), rtype, f"{logical_id}.Type")
        return r.get("Properties", {}) or {}

    # ---------------------------------------------------------- (b) queues
    q = props("LeadsQueue", "AWS::SQS::Queue")
    c.eq(q.get("QueueName"), _sub("${Prefix}-leads.fifo"), "LeadsQueue.QueueName")
    c.eq(q.get("FifoQueue"), True, "LeadsQueue.FifoQueue")
    c.eq(q.get("ContentBasedDeduplication"), False, "LeadsQueue.ContentBasedDeduplication")
    c.eq(q.get("VisibilityTimeout"), 360, "LeadsQueue.VisibilityTimeout")
    c.eq(q.get("MessageRetentionPeriod"), 345600, "LeadsQueue.MessageRetentionPeriod")
    # ingest refuses (413) a lead whose message would not fit this, with room for a dead letter
    c.eq(q.get("MaximumMessageSize"), 262144, "LeadsQueue.MaximumMessageSize")
    c.eq(q.get("SqsManagedSseEnabled"), True, "LeadsQueue.SqsManagedSseEnabled")
    rp = q.get("RedrivePolicy", {}) or {}
    c.eq(rp.get("deadLetterTargetArn"), {"Fn::GetAtt": ["LeadsDlq", "Arn"]},
         "LeadsQueue.RedrivePolicy.deadLetterTargetArn")
    c.eq(rp.get("maxReceiveCount"), 40, "LeadsQueue.RedrivePolicy.maxReceiveCount")

    d = props("LeadsDlq", "AWS::SQS::Queue")
    c.eq(d.get("QueueName"), _sub("${Prefix}-leads-dlq.fifo"), "LeadsDlq.QueueName")
    c.eq(d.get("FifoQueue"), True, "LeadsDlq.FifoQueue")
    c.eq(d.get("MessageRetentionPeriod"), 1209600, "LeadsDlq.MessageRetentionPeriod")
    c.eq(d.get("MaximumMessageSize"), 262144, "LeadsDlq.MaximumMessageSize")
    c.eq(d.get("VisibilityTimeout"), 180, "LeadsDlq.VisibilityTimeout")
    c.eq(d.get("SqsManagedSseEnabled"), True, "LeadsDlq.SqsManagedSseEnabled")

    # The bulk lane: standard queues with the real-time lane's settings.
    b = props("BulkQueue", "AWS::SQS::Queue")
    c.eq(b.get("QueueName"), _sub("${Prefix}-bulk"), "BulkQueue.QueueName")
    c.check(not b.get("FifoQueue"), "BulkQueue is a standard queue")
    c.eq(b.get("VisibilityTimeout"), 360, "BulkQueue.VisibilityTimeout")
    c.eq(b.get("MessageRetentionPeriod"), 345600, "BulkQueue.MessageRetentionPeriod")
    c.eq(b.get("MaximumMessageSize"), 262144, "BulkQueue.MaximumMessageSize")
    c.eq(b.get("SqsManagedSseEnabled"), True, "BulkQueue.SqsManagedSseEnabled")
    brp = b.get("RedrivePolicy", {}) or {}
    c.eq(brp.get("deadLetterTargetArn"), {"Fn::GetAtt": ["BulkDlq", "Arn"]},
         "BulkQueue.RedrivePolicy.deadLetterTargetArn")
    c.eq(brp.get("maxReceiveCount"), 40, "BulkQueue.RedrivePolicy.maxReceiveCount")
    bd = props("BulkDlq", "AWS::SQS::Queue")
    c.eq(bd.get("QueueName"), _sub("${Prefix}-bulk-dlq"), "BulkDlq.QueueName")
    c.check(not bd.get("FifoQueue"), "BulkDlq is a standard queue")
    c.eq(bd.get("MessageRetentionPeriod"), 1209600, "BulkDlq.MessageRetentionPeriod")
    c.eq(bd.get("MaximumMessageSize"), 262144, "BulkDlq.MaximumMessageSize")
    c.eq(bd.get("VisibilityTimeout"), 180, "BulkDlq.VisibilityTimeout")
    c.eq(bd.get("SqsManagedSseEnabled"), True, "BulkDlq.SqsManagedSseEnabled")

    # ---------------------------------------------------------- (b) table
    tb = props("LedgerTable", "AWS::DynamoDB::Table")
    c.eq(tb.get("TableName"), _sub("${Prefix}-ledger"), "LedgerTable.TableName")
    c.eq(tb.get("BillingMode"), "PAY_PER_REQUEST", "LedgerTable.BillingMode")
    c.eq(
        sorted((a.get("AttributeName"), a.get("AttributeType")) for a in tb.get("AttributeDefinitions", [])),
        [("pk", "S"), ("sk", "S"), ("status", "S"), ("updated_at", "S")],
        "LedgerTable.AttributeDefinitions",
    )
    gsis = {g.get("IndexName"): g for g in tb.get("GlobalSecondaryIndexes", [])}
    c.eq(sorted(gsis), ["status-updated_at-index"], "LedgerTable.GlobalSecondaryIndexes")
    gsi = gsis.get("status-updated_at-index", {})
    c.eq(
        [(k.get("AttributeName"), k.get("KeyType")) for k in gsi.get("KeySchema", [])],
        [("status", "HASH"), ("updated_at", "RANGE")],
        "LedgerTable status index KeySchema",
    )
    c.eq(
        [(k.get("AttributeName"), k.get("KeyType")) for k in tb.get("KeySchema", [])],
        [("pk", "HASH"), ("sk", "RANGE")],
        "LedgerTable.KeySchema",
    )
    c.eq(tb.get("TimeToLiveSpecification"), {"AttributeName": "expires_at", "Enabled": True},
         "LedgerTable.TimeToLiveSpecification")
    c.eq(tb.get("PointInTimeRecoverySpecification"), {"PointInTimeRecoveryEnabled": True},
         "LedgerTable.PointInTimeRecoverySpecification")
    c.eq((tb.get("SSESpecification") or {}).get("SSEEnabled"), True, "LedgerTable.SSESpecification.SSEEnabled")
    c.eq((tb.get("SSESpecification") or {}).get("SSEType"), "KMS", "LedgerTable.SSESpecification.SSEType")
    c.eq(tb.get("DeletionProtectionEnabled"), True, "LedgerTable.DeletionProtectionEnabled")
    c.eq(res.get("LedgerTable", {}).get("DeletionPolicy"), "Retain", "LedgerTable.DeletionPolicy")
    c.eq(res.get("LedgerTable", {}).get("UpdateReplacePolicy"), "Retain", "LedgerTable.UpdateReplacePolicy")

    # ---------------------------------------------------------- (b) topic, secrets
    tp = props("AlertsTopic", "AWS::SNS::Topic")
    c.eq(tp.get("KmsMasterKeyId"), {"Ref": "AlertsKey"}, "AlertsTopic.KmsMasterKeyId")
    key = props("AlertsKey", "AWS::KMS::Key")
    c.eq(key.get("EnableKeyRotation"), True, "AlertsKey.EnableKeyRotation")
    alarms_may_publish = any(
        (st.get("Principal") or {}).get("Service") == "cloudwatch.amazonaws.com"
        and set(_as_list(st.get("Action"))) >= {"kms:Decrypt", "kms:GenerateDataKey*"}
        for st in _as_list((key.get("KeyPolicy") or {}).get("Statement"))
    )
    c.check(alarms_may_publish, "AlertsKey.KeyPolicy: CloudWatch alarms must be able to publish to the encrypted topic")
    c.eq(tp.get("TopicName"), _sub("${Prefix}-alerts"), "AlertsTopic.TopicName")
    sub = res.get("AlertEmailSubscription", {})
    c.eq(sub.get("Type"), "AWS::SNS::Subscription", "AlertEmailSubscription.Type")
    c.eq(sub.get("Condition"), "HasAlertEmail", "AlertEmailSubscription.Condition")
    c.eq((sub.get("Properties") or {}).get("Protocol"), "email", "AlertEmailSubscription.Protocol")

    for sid, name, key in (("WebhookSecret", "${Prefix}/webhook", "secrets"),
                           ("HubSpotSecret", "${Prefix}/hubspot", "token"),
                           ("StatusApiKeySecret", "${Prefix}/status-api-key", "keys")):
        s = props(sid, "AWS::SecretsManager::Secret")
        c.eq(s.get("Name"), _sub(name), f"{sid}.Name")
        c.check("SecretString" not in s, f"{sid} must not hold a SecretString in clear")
        g = s.get("GenerateSecretString") or {}
        c.eq(g.get("GenerateStringKey"), key, f"{sid}.GenerateSecretString.GenerateStringKey")
        c.eq(g.get("SecretStringTemplate"), "{}", f"{sid}.GenerateSecretString.SecretStringTemplate")

    # ---------------------------------------------------------- functions
    c.eq(glob.get("Runtime"), "provided.al2023", "Globals.Function.Runtime")
    c.eq(glob.get("Architectures"), ["arm64"], "Globals.Function.Architectures")
    c.eq(glob.get("Handler"), "bootstrap", "Globals.Function.Handler")
    c.eq((glob.get("LoggingConfig") or {}).get("LogFormat"), "JSON", "Globals.Function.LoggingConfig.LogFormat")
    c.eq(glob.get("Tracing"), "Active", "Globals.Function.Tracing")
    for forbidden in ("Policies", "Role"):
        c.check(forbidden not in glob, f"Globals.Function must not set {forbidden}")

    serverless_fns = sorted(k for k, v in res.items() if v.get("Type") == "AWS::Serverless::Function")
    c.eq(serverless_fns, sorted(FUNCTIONS), "set of AWS::Serverless::Function resources")
    plain_fns = [k for k, v in res.items() if v.get("Type") == "AWS::Lambda::Function"]
    c.check(not plain_fns, f"unexpected AWS::Lambda::Function resources: {plain_fns}")

    timeouts: dict[str, int] = {}
    for fid, (suffix, binary, log_group) in FUNCTIONS.items():
        r = res.get(fid, {})
        p = props(fid, "AWS::Serverless::Function")
        c.eq(p.get("FunctionName"), _sub("${Prefix}-" + suffix), f"{fid}.FunctionName")
        timeouts[fid] = int(p.get("Timeout", glob.get("Timeout", 3)))

        # (d) architecture, runtime, build method
        c.eq(p.get("Architectures", glob.get("Architectures")), ["arm64"], f"{fid} architecture")
        c.eq(p.get("Runtime", glob.get("Runtime")), "provided.al2023", f"{fid} runtime")
        c.eq(p.get("Handler", glob.get("Handler")), "bootstrap", f"{fid} handler")
        md = r.get("Metadata") or {}
        c.eq(md.get("BuildMethod"), "rust-cargolambda", f"{fid}.Metadata.BuildMethod")
        c.eq((md.get("BuildProperties") or {}).get("Binary"), binary, f"{fid}.Metadata.BuildProperties.Binary")

        lg = props(log_group, "AWS::Logs::LogGroup")
        c.eq(lg.get("LogGroupName"), _sub("/aws/lambda/${Prefix}-" + suffix), f"{log_group}.LogGroupName")
        c.eq(lg.get("RetentionInDays"), 30, f"{log_group}.RetentionInDays")

        env = dict(((glob.get("Environment") or {}).get("Variables") or {}))
        env.update(((p.get("Environment") or {}).get("Variables") or {}))
        env.pop("RUST_LOG", None)
        env.pop("AWS_LAMBDA_LOG_LEVEL", None)
        c.eq(env, ENV[fid], f"{fid} environment")

        # (a) least privilege
        c.check("Role" not in p, f"{fid} must not use an external Role (its policy would not be checked)")
        granted: dict[str, set[str]] = {}
        for i, pol in enumerate(_as_list(p.get("Policies"))):
            where = f"{fid}.Policies[{i}]"
            if not c.check(isinstance(pol, dict) and "Statement" in pol,
                           f"{where}: only inline Statement documents are allowed "
                           f"(no managed policies or SAM policy templates), got {json.dumps(pol, default=str)}"):
                continue
            for j, st in enumerate(_as_list(pol["Statement"])):
                w = f"{where}.Statement[{j}]"
                # A conditional statement: `!If [Condition, statement, !Ref AWS::NoValue]` only.
                if isinstance(st, dict) and "Fn::If" in st:
                    cond = st["Fn::If"]
                    if not c.check(isinstance(cond, list) and len(cond) == 3
                                   and cond[0] in CONDITIONAL_STATEMENTS
                                   and cond[2] == {"Ref": "AWS::NoValue"},
                                   f"{w}: a conditional statement must be !If [known condition, statement, AWS::NoValue]"):
                        continue
                    st = cond[1]
                c.eq(st.get("Effect"), "Allow", f"{w}.Effect")
                c.check("NotAction" not in st and "NotResource" not in st,
                        f"{w}: NotAction/NotResource are not allowed")
                actions = _as_list(st.get("Action"))
                resources = _as_list(st.get("Resource"))
                c.check(not _contains_star(actions), f"{w}: '*' in Action {actions}")
                c.check(not _contains_star(resources), f"{w}: '*' in Resource {json.dumps(resources, default=str)}")
                c.check(bool(actions) and bool(resources), f"{w}: Action and Resource must be non-empty")
                for rr in resources:
                    target = _arn_target(rr)
                    ok = (target is not None and target[0] in ARN_FORMS
                          and target[1] in ARN_FORMS[target[0]])
                    if not c.check(ok, f"{w}: Resource {json.dumps(rr, default=str)} is not the ARN "
                                       f"of a known resource (queue/table: !GetAtt X.Arn; secret/topic: !Ref)"):
                        continue
                    granted.setdefault(target[0], set()).update(actions)
        expected = POLICIES[fid]
        for rid in sorted(set(granted) | set(expected)):
            got, want = granted.get(rid, set()), expected.get(rid, set())
            c.check(got == want,
                    f"{fid} on {rid}: expected actions {sorted(want)}, got {sorted(got)}"
                    + (f" (extra: {sorted(got - want)})" if got - want else "")
                    + (f" (missing: {sorted(want - got)})" if want - got else ""))

    # (c) visibility timeouts vs function timeouts (AWS recommends >= 6x)
    c.check(int(q.get("VisibilityTimeout", 30)) >= 6 * timeouts.get("WorkerFunction", 3),
            f"LeadsQueue.VisibilityTimeout ({q.get('VisibilityTimeout')}) must be >= 6 x "
            f"WorkerFunction Timeout ({timeouts.get('WorkerFunction')})")
    c.check(int(d.get("VisibilityTimeout", 30)) >= 6 * timeouts.get("DlqAlerterFunction", 3),
            f"LeadsDlq.VisibilityTimeout ({d.get('VisibilityTimeout')}) must be >= 6 x "
            f"DlqAlerterFunction Timeout ({timeouts.get('DlqAlerterFunction')})")
    c.eq(timeouts.get("IngestFunction"), 10, "IngestFunction.Timeout")
    c.eq(timeouts.get("WorkerFunction"), 60, "WorkerFunction.Timeout")
    c.eq(timeouts.get("DlqAlerterFunction"), 30, "DlqAlerterFunction.Timeout")
    c.check("ReservedConcurrentExecutions" not in (res.get("WorkerFunction", {}).get("Properties") or {}),
            "WorkerFunction must not set ReservedConcurrentExecutions")

    # ---------------------------------------------------------- (e) event sources
    def events(fid: str) -> dict:
        return ((res.get(fid, {}).get("Properties") or {}).get("Events")) or {}

    # Each function's SQS events, exactly: queue -> (batch size, other settings).
    expected_events = {
        "WorkerFunction": {
            "LeadsQueue": (10, {"ScalingConfig": {"MaximumConcurrency": 5}}),
            # the bulk lane: large batches, few at a time
            "BulkQueue": (100, {"ScalingConfig": {"MaximumConcurrency": 2},
                                "MaximumBatchingWindowInSeconds": 10}),
        },
        "DlqAlerterFunction": {"LeadsDlq": (10, {}), "BulkDlq": (10, {})},
    }
    for fid, queues in expected_events.items():
        sqs = [e.get("Properties") or {} for e in events(fid).values() if e.get("Type") == "SQS"]
        by_queue = {}
        for e in sqs:
            q = e.get("Queue") or {}
            by_queue[(q.get("Fn::GetAtt") or [None])[0]] = e
        c.eq(sorted(k for k in by_queue if k), sorted(queues), f"{fid} SQS event queues")
        for queue, (batch, extra) in queues.items():
            e = by_queue.get(queue)
            if not c.check(e is not None, f"{fid} has an SQS event on {queue}"):
                continue
            c.eq(e.get("Queue"), {"Fn::GetAtt": [queue, "Arn"]}, f"{fid} SQS event Queue")
            c.eq(e.get("BatchSize"), batch, f"{fid} {queue} event BatchSize")
            c.check("ReportBatchItemFailures" in _as_list(e.get("FunctionResponseTypes")),
                    f"{fid} {queue} event must have FunctionResponseTypes [ReportBatchItemFailures]")
            for k, v in extra.items():
                c.eq(e.get(k), v, f"{fid} {queue} event {k}")

    # The hourly schema and quota check: one schedule on the worker.
    schedules = [e.get("Properties") or {} for e in events("WorkerFunction").values()
                 if e.get("Type") == "Schedule"]
    c.eq([s.get("Schedule") for s in schedules], ["rate(1 hour)"], "WorkerFunction Schedule events")

    # The webhook, the sources, the status API and the operators' console; nothing else is routed to ingest.
    http = [e.get("Properties") or {} for e in events("IngestFunction").values() if e.get("Type") == "HttpApi"]
    for e in http:
        c.eq(e.get("ApiId"), {"Ref": "HttpApi"}, "IngestFunction HttpApi event ApiId")
    c.eq(sorted((e.get("Method"), e.get("Path")) for e in http),
         [("GET", "/console"), ("GET", "/v1/console/events"), ("GET", "/v1/console/events/{id}"),
          ("GET", "/v1/console/flow"), ("GET", "/v1/events/{event_id}"), ("GET", "/v1/sources/{source}"),
          ("POST", "/v1/console/replay"), ("POST", "/v1/events"), ("POST", "/v1/sources/{source}")],
         "IngestFunction HttpApi events (Method, Path)")
    # No console route is served without the key check: none has an authorizer of its own to
    # replace it, and none is open to another origin (the console calls its own origin only).
    for e in http:
        c.check("Auth" not in e, f"IngestFunction HttpApi event {e.get('Path')} must not set Auth")
    c.check("CorsConfiguration" not in (res.get("HttpApi", {}).get("Properties") or {}),
            "HttpApi must not allow other origins (CorsConfiguration)")
    props("HttpApi", "AWS::Serverless::HttpApi")

    # ---------------------------------------------------------- alarms, outputs
    for alarm in ("DlqDepthAlarm", "OldestMessageAlarm", "WorkerErrorsAlarm", "IngestErrorsAlarm",
                  "AlerterErrorsAlarm", "DlqOldestMessageAlarm", "Ingest5xxAlarm", "RejectionRateAlarm",
                  "NoLeadsSyncedAlarm"):
        a = props(alarm, "AWS::CloudWatch::Alarm")
        c.eq(a.get("AlarmActions"), [{"Ref": "AlertsTopic"}], f"{alarm}.AlarmActions")
        c.eq(a.get("TreatMissingData"), "notBreaching", f"{alarm}.TreatMissingData")
    alerter_alarm = (res.get("AlerterErrorsAlarm", {}).get("Properties") or {})
    c.eq(alerter_alarm.get("Dimensions"), [{"Name": "FunctionName", "Value": {"Ref": "DlqAlerterFunction"}}],
         "AlerterErrorsAlarm.Dimensions")
    api_alarm = (res.get("Ingest5xxAlarm", {}).get("Properties") or {})
    c.eq([api_alarm.get("Namespace"), api_alarm.get("MetricName")], ["AWS/ApiGateway", "5xx"], "Ingest5xxAlarm metric")
    api = props("HttpApi", "AWS::Serverless::HttpApi")
    status_route = (api.get("RouteSettings") or {}).get("GET /v1/events/{event_id}") or {}
    # the numbers docs/contracts.md gives
    c.eq([status_route.get("ThrottlingRateLimit"), status_route.get("ThrottlingBurstLimit")], [10, 20],
         "HttpApi.RouteSettings: the status API's throttle")
    for route, limits in (("GET /v1/console/flow", [10, 20]), ("GET /v1/console/events", [10, 20]),
                          ("GET /v1/console/events/{id}", [10, 20]), ("POST /v1/console/replay", [1, 5])):
        r = (api.get("RouteSettings") or {}).get(route) or {}
        c.eq([r.get("ThrottlingRateLimit"), r.get("ThrottlingBurstLimit")], limits,
             f"HttpApi.RouteSettings: the console's throttle on {route}")
    default = api.get("DefaultRouteSettings") or {}
    c.eq([default.get("ThrottlingRateLimit"), default.get("ThrottlingBurstLimit")], [100, 200],
         "HttpApi.DefaultRouteSettings: the webhook's throttle")
    mf = props("RejectionsMetricFilter", "AWS::Logs::MetricFilter")
    c.eq(mf.get("LogGroupName"), {"Ref": "IngestLogGroup"}, "RejectionsMetricFilter.LogGroupName")
    dlq_alarm = (res.get("DlqDepthAlarm", {}).get("Properties") or {})
    c.eq(dlq_alarm.get("Dimensions"), [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["LeadsDlq", "QueueName"]}}],
         "DlqDepthAlarm.Dimensions")

    # The lead-flow metrics the dashboard and the stalled-flow alarm read are the ones
    # lb_pipeline::telemetry emits (EMF, namespace "leadbridge").
    import re
    telemetry = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "pipeline",
                                  "src", "telemetry.rs"), encoding="utf-8").read()
    emitted = set(re.findall(r'"(Leads[A-Za-z]+|SyncLatencyMs)"', telemetry))
    c.check(re.search(r'NAMESPACE: &str = "leadbridge"', telemetry) is not None,
            "telemetry.rs: the metrics namespace is leadbridge")
    stalled = props("NoLeadsSyncedAlarm", "AWS::CloudWatch::Alarm")
    used = {m["MetricStat"]["Metric"]["MetricName"] for m in stalled.get("Metrics", []) if "MetricStat" in m}
    c.eq(sorted(used), ["LeadsAcceptedTotal", "LeadsSyncedTotal"], "NoLeadsSyncedAlarm metrics")
    c.check(used <= emitted, f"NoLeadsSyncedAlarm reads metrics telemetry.rs emits: {sorted(used - emitted)}")
    dash = props("LeadFlowDashboard", "AWS::CloudWatch::Dashboard")
    body = dash.get("DashboardBody")
    text = body.get("Fn::Sub") if isinstance(body, dict) else body
    if c.check(isinstance(text, str), "LeadFlowDashboard.DashboardBody is a !Sub string"):
        try:
            doc = json.loads(re.sub(r"\$\{[^}]+\}", "x", text))
        except ValueError as e:
            doc = None
            c.check(False, f"LeadFlowDashboard.DashboardBody is JSON once substituted: {e}")
        if doc is not None:
            named = set(re.findall(r'(Leads[A-Za-z]+|SyncLatencyMs)', json.dumps(doc)))
            c.check(named and named <= emitted,
                    f"the dashboard reads only metrics telemetry.rs emits: {sorted(named - emitted)}")

    # docs/openapi.yaml documents exactly the routes the API serves.
    spec = load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "openapi.yaml"))
    documented = sorted((m.upper(), p) for p, ops in (spec.get("paths") or {}).items()
                        for m in ops if m in ("get", "post", "put", "patch", "delete"))
    served = sorted((e.get("Method"), e.get("Path")) for e in http)
    c.eq(documented, served, "docs/openapi.yaml paths = the HttpApi routes")

    outputs = t.get("Outputs", {}) or {}
    for o in ("IngestUrl", "LeadsQueueUrl", "LeadsDlqUrl", "LedgerTableName",
              "AlertsTopicArn", "WebhookSecretArn", "HubSpotSecretArn", "StatusApiKeySecretArn",
              "ConsoleUrl"):
        c.check(o in outputs, f"Outputs.{o} is missing")
    c.eq((outputs.get("IngestUrl") or {}).get("Value"),
         _sub("https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1/events"),
         "Outputs.IngestUrl")


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "template.yaml")
    try:
        template = load(path)
    except (OSError, yaml.YAMLError) as e:
        print(f"template check: cannot load {path}: {e}", file=sys.stderr)
        return 1
    c = Checker()
    check_template(template if isinstance(template, dict) else {}, c)
    if c.failures:
        for f in c.failures:
            print(f"FAIL: {f}", file=sys.stderr)
        print(f"template check: {len(c.failures)} failed, {c.passed} passed ({path})", file=sys.stderr)
        return 1
    print(f"template check: {c.passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
