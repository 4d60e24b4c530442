"""`make package`: the AWS templates build, lint clean, wire the app to the data plane's exports,
grant least privilege, and the alarms watch what the app stack and the app actually emit.

SAM output cannot be deployed into moto (PITFALLS), so the packaged stack is checked by cfn-lint
and by reading it. The build runs once per session (~5 s with chalice's dependency layer cached,
~30 s when requirements.txt changed and chalice downloads the Lambda wheels again).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.cfn import OUTPUT_ENV, gateway_response, load_template

ROOT = Path(__file__).resolve().parent.parent
STAGE = "prod"
FUNCTIONS = {  # logical id in sam.json -> app.py handler
    "APIHandler": "app",
    "SlackNotifier": "slack_notifier",
    "RescoreWorker": "rescore_worker",
    "OutboxSweeper": "outbox_sweeper",
    "DeliverySweeper": "delivery_sweeper",
    "SlaChecker": "sla_checker",
    "OutboxRelay": "outbox_relay",
}
# Actions AWS authorises only on "*" (no resource-level permissions). None is granted today; an
# entry here must say why, e.g. "xray:PutTraceSegments": "X-Ray has no resource ARNs".
NEEDS_STAR_RESOURCE: dict[str, str] = {}


# -- helpers -----------------------------------------------------------------------------------

def _sub_stage(value: Any) -> Any:
    """Resolve ``{"Fn::Sub": "...${Stage}..."}`` for the packaged stage (what the stack would)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"].replace("${Stage}", STAGE)
    return value


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for child in node.values():
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)


def _imports(node: Any) -> set[str]:
    return {_sub_stage(n["Fn::ImportValue"]) for n in _walk(node) if isinstance(n, dict) and "Fn::ImportValue" in n}


def _exports(data_plane: dict[str, Any]) -> set[str]:
    return {_sub_stage(o["Export"]["Name"]) for o in data_plane["Outputs"].values()}


def _import(output: str) -> dict[str, str]:
    return {"Fn::ImportValue": f"baton-{STAGE}-{output}"}


def _statements(sam: dict[str, Any]) -> list[tuple[set[str], dict[str, Any]]]:
    """Every IAM statement of the app stack, with the logical ids of the roles it applies to."""
    found: list[tuple[set[str], dict[str, Any]]] = []
    for name, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                found += [({name}, s) for s in policy["PolicyDocument"]["Statement"]]
        elif resource["Type"] == "AWS::IAM::Policy":
            roles = {r["Ref"] for r in props["Roles"]}
            found += [(roles, s) for s in props["PolicyDocument"]["Statement"]]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- the build ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make package`` into a temporary directory, once per session (xdist workers share it)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "chalice").exists() or shutil.which("make") is None:
        pytest.skip("needs make and chalice in this interpreter's environment")
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    out = base / "package"
    with open(base / "package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build; chalice's cache in .chalice/ is not concurrency-safe
        log = base / "package.json"
        if not log.exists():
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
            env.pop("AWS_DEFAULT_REGION", None)  # the Makefile's default, as on a fresh machine
            stamp = venv / ".baton-installed"  # never reinstall the venv from inside a test
            done = subprocess.run(
                ["make", "--no-print-directory", "-o", str(stamp), "package", f"VENV={venv}", f"BUILD={out}"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
            )
            log.write_text(json.dumps({"rc": done.returncode, "output": done.stdout + done.stderr}))
    result = json.loads(log.read_text())
    assert result["rc"] == 0, result["output"]
    return out


@pytest.fixture(scope="session")
def sam(build: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((build / "app" / "sam.json").read_text())
    return data


@pytest.fixture(scope="session")
def data_plane() -> dict[str, Any]:
    return load_template(ROOT / "infra" / "data-plane.yaml")


@pytest.fixture(scope="session")
def alarms() -> dict[str, Any]:
    return load_template(ROOT / "infra" / "alarms.yaml")


# -- build and lint ----------------------------------------------------------------------------

@pytest.mark.slow
def test_package_builds_every_template(build: Path) -> None:
    assert (build / "data-plane.yaml").read_text() == (ROOT / "infra" / "data-plane.yaml").read_text()
    assert (build / "alarms.yaml").read_text() == (ROOT / "infra" / "alarms.yaml").read_text()
    assert (build / "app" / "deployment.zip").stat().st_size > 0
    assert not (build / "app" / "sam.yaml").exists(), "converted to sam.json"
    assert "PLACEHOLDER" not in (build / "app" / "sam.json").read_text()


@pytest.mark.slow
def test_the_zip_ships_the_lambda_library_only(build: Path) -> None:
    """The analyst package (backtest, metrics, synthetic history, CLI, SLA document) never reaches
    Lambda, and neither do bytecode caches of the working tree."""
    with zipfile.ZipFile(build / "app" / "deployment.zip") as zipped:
        names = zipped.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"app.py", "chalice", "chalicelib"}, tops
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    analyst = {f"chalicelib/{p.relative_to(ROOT / 'baton')}" for p in (ROOT / "baton").rglob("*.py")
               if p.name != "__init__.py"}
    old_homes = ("chalicelib/backtest/", "chalicelib/cli.py", "chalicelib/rules/sla_doc.py")
    assert not [n for n in names if n in analyst or n.startswith(old_homes)]
    # Nothing Lambda imports reaches for the analyst package either.
    loaded = subprocess.run([sys.executable, "-c", "import sys, app; print(sorted(m for m in sys.modules "
                             "if m == 'baton' or m.startswith('baton.')))"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", loaded
    # Every shipped module is reachable from the sources, so the zip is what the tree says.
    expected = {f"chalicelib/{p.relative_to(ROOT / 'chalicelib')}" for p in (ROOT / "chalicelib").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert {n for n in names if n.startswith("chalicelib/")} == expected


@pytest.mark.slow
def test_templates_are_cfn_lint_clean(build: Path) -> None:
    templates = [build / "data-plane.yaml", build / "alarms.yaml", build / "app" / "sam.json",
                 ROOT / "infra" / "app-overrides.yaml"]  # the merge template is also checked alone
    done = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "cfn-lint"), "--include-checks", "I", "--", *map(str, templates)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


# -- API Gateway's own answers -----------------------------------------------------------------

@pytest.mark.slow
def test_api_gateway_answers_in_the_app_error_shape(sam: dict[str, Any]) -> None:
    """An unknown route (API Gateway's 403 "Missing Authentication Token" by default), throttling, a
    failed function: API Gateway answers them before the app runs, with the templates' bodies."""
    api = sam["Resources"]["RestAPI"]
    assert api["Type"] == "AWS::Serverless::Api" and "DefinitionBody" in api["Properties"]  # chalice's, kept
    responses = api["Properties"]["GatewayResponses"]
    assert {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    # Part of the API definition: separate resources would need a new deployment, and SAM drops them.
    assert not [r for r in sam["Resources"].values() if r["Type"] == "AWS::ApiGateway::GatewayResponse"]
    message = json.dumps('a "quoted" message from API Gateway')  # what $context.error.messageString is
    for kind, response in responses.items():
        template = response["ResponseTemplates"]["application/json"]
        # Gateway responses substitute variables and run no template logic: only this one is used.
        assert "$" not in template.replace("$context.error.messageString", ""), kind
        body = json.loads(template.replace("$context.error.messageString", message))
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, kind
        assert re.fullmatch(r"[a-z][a-z0-9_]*", body["error"]["code"]), kind
        assert isinstance(body["error"]["details"], dict), kind
        assert set(response) <= {"StatusCode", "ResponseTemplates", "ResponseParameters"}, kind
    unknown = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert int(unknown["StatusCode"]) == 404
    assert json.loads(unknown["ResponseTemplates"]["application/json"])["error"]["code"] == "not_found"
    # The local stack serves the very same answer to an unknown route (tests/localstack checks it live).
    assert gateway_response("MISSING_AUTHENTICATION_TOKEN") == (
        404, unknown["ResponseTemplates"]["application/json"].encode())
    assert responses["THROTTLED"]["ResponseParameters"]["Headers"]["Retry-After"] == "'1'"


# -- wiring to the data plane ------------------------------------------------------------------

@pytest.mark.slow
def test_a_waf_rate_based_rule_limits_form_posts_per_client_on_the_api_stage(sam: dict[str, Any]) -> None:
    resources = sam["Resources"]
    acl = resources["PublicWebAcl"]["Properties"]
    assert acl["Scope"] == "REGIONAL" and "Allow" in acl["DefaultAction"]
    (rule,) = acl["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP" and rate["Limit"] == {"Ref": "FormPostsPerClient"}
    assert rate["ScopeDownStatement"]["ByteMatchStatement"]["SearchString"] == "/v1/forms/"
    block = rule["Action"]["Block"]["CustomResponse"]
    assert block["ResponseCode"] == 429 and block["ResponseHeaders"][0]["Name"] == "Retry-After"
    body = json.loads(acl["CustomResponseBodies"][block["CustomResponseBodyKey"]]["Content"])
    assert body["error"]["code"] == "too_many_requests"  # the app's error shape
    association = resources["PublicWebAclAssociation"]["Properties"]
    assert association["WebACLArn"] == {"Fn::GetAtt": ["PublicWebAcl", "Arn"]}
    assert association["ResourceArn"]["Fn::Sub"].endswith("/restapis/${RestAPI}/stages/${RestAPI.Stage}")


def test_functions_get_the_data_plane_through_its_exports(sam: dict[str, Any]) -> None:
    resources = sam["Resources"]
    assert {n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"} == set(FUNCTIONS)
    for name, handler in FUNCTIONS.items():
        props = resources[name]["Properties"]
        env = props["Environment"]["Variables"]
        # Every output the local stack turns into a variable (devstack.cfn), imported here.
        for output, variable in OUTPUT_ENV.items():
            assert env[variable] == _import(output), (name, variable)
        assert env["BATON_STAGE"] == STAGE and env["BATON_SSM_PREFIX"] == f"/baton/{STAGE}/"
        assert props["Handler"] == f"app.{handler}"
        assert props["FunctionName"] == (f"baton-{STAGE}" if handler == "app" else f"baton-{STAGE}-{handler}")
        group = resources[props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert group["Properties"]["LogGroupName"] == f"/aws/lambda/{props['FunctionName']}"


@pytest.mark.slow
def test_event_sources_are_the_data_plane_topic_queue_and_stream(sam: dict[str, Any],
                                                                 data_plane: dict[str, Any]) -> None:
    resources = sam["Resources"]
    names = {k: _sub_stage(v["Properties"].get("TopicName") or v["Properties"].get("QueueName"))
             for k, v in data_plane["Resources"].items() if v["Type"] in ("AWS::SNS::Topic", "AWS::SQS::Queue")}
    (sns,) = resources["SlackNotifier"]["Properties"]["Events"].values()
    assert sns["Type"] == "SNS" and sns["Properties"]["Topic"]["Fn::Sub"].endswith(":" + names["HandoffTopic"])
    (sqs,) = resources["RescoreWorker"]["Properties"]["Events"].values()
    assert sqs["Type"] == "SQS" and sqs["Properties"]["Queue"]["Fn::Sub"].endswith(":" + names["RescoreQueue"])
    (stream,) = resources["OutboxRelay"]["Properties"]["Events"].values()
    assert stream["Type"] == "DynamoDB"
    assert stream["Properties"]["Stream"] == _import("OutboxStreamArn")  # not two intrinsics merged
    (only,) = stream["Properties"]["FilterCriteria"]["Filters"]
    from chalicelib.outbox.relay import new_message

    pattern = json.loads(only["Pattern"])  # what Lambda lets through is what the handler relays for
    assert pattern["eventName"] == ["INSERT"] and new_message({"eventName": "INSERT", "dynamodb": {
        "NewImage": {k: {"S": "x"} for k in pattern["dynamodb"]["NewImage"]}}})
    dlq = resources["SlackNotifier"]["Properties"]["DeadLetterQueue"]
    assert dlq == {"Type": "SQS", "TargetArn": _import("DeadLetterQueueArn")}


@pytest.mark.slow
def test_every_import_is_an_export_of_the_data_plane(sam: dict[str, Any], alarms: dict[str, Any],
                                                     data_plane: dict[str, Any]) -> None:
    exports = _exports(data_plane)
    assert _imports(sam) <= exports
    assert _imports(alarms) <= exports
    assert not [n for n in _walk(sam) if isinstance(n, dict) and len(n) > 1
                and sum(k == "Ref" or k.startswith("Fn::") for k in n) > 1], "two intrinsics in one object"


@pytest.mark.slow
def test_restated_values_agree_with_chalice(sam: dict[str, Any]) -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][STAGE]
    assert sam["Resources"]["RestAPI"]["Properties"]["StageName"] == config["api_gateway_stage"]
    for name in FUNCTIONS:
        role = sam["Resources"][sam["Resources"][name]["Properties"]["Role"]["Fn::GetAtt"][0]]
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"


# -- least privilege ---------------------------------------------------------------------------

@pytest.mark.slow
def test_iam_names_its_resources(sam: dict[str, Any]) -> None:
    statements = _statements(sam)
    assert statements
    for _, statement in statements:
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        assert all(":" in a and not a.endswith(":*") and a != "*" for a in actions), actions
        for resource in _as_list(statement["Resource"]):
            if resource == "*":
                assert set(actions) <= set(NEEDS_STAR_RESOURCE), f"{actions} on '*'"
            elif isinstance(resource, str):
                # Literal ARNs (from .chalice/policy-prod.json) name the stage's own resources,
                # except KMS keys, which are reachable only through SSM (checked below).
                assert f"baton/{STAGE}/" in resource or f"baton-{STAGE}" in resource or (
                    resource == "arn:aws:kms:*:*:key/*"
                ), resource
            else:  # the data plane: by imported ARN, or an ARN built from an imported name
                assert _imports(resource), resource


@pytest.mark.slow
def test_iam_grants_only_what_each_function_needs(sam: dict[str, Any]) -> None:
    roles = {sam["Resources"][n]["Properties"]["Role"]["Fn::GetAtt"][0]: n for n in FUNCTIONS}
    grants: dict[str, list[tuple[set[str], dict[str, Any]]]] = {}
    for applies_to, statement in _statements(sam):
        assert applies_to <= set(roles)
        for action in _as_list(statement["Action"]):
            grants.setdefault(action, []).append((applies_to, statement))

    def functions(action: str) -> set[str]:
        return {roles[r] for applies_to, _ in grants[action] for r in applies_to}

    def resources(action: str) -> list[Any]:
        return [r for _, s in grants[action] for r in _as_list(s["Resource"])]

    assert functions("sqs:ReceiveMessage") == functions("sqs:DeleteMessage") == {"RescoreWorker"}
    assert resources("sqs:ReceiveMessage") == [_import("RescoreQueueArn")]
    assert sorted(map(json.dumps, resources("sqs:SendMessage"))) == sorted(
        map(json.dumps, [_import("RescoreQueueArn"), _import("DeadLetterQueueArn")])
    )
    dlq_senders = {roles[r] for applies_to, s in grants["sqs:SendMessage"] if s["Resource"] == _import(
        "DeadLetterQueueArn") for r in applies_to}
    assert dlq_senders == {"SlackNotifier", "DeliverySweeper"}, "the two that park alerts"
    assert functions("dynamodb:GetRecords") == {"OutboxRelay"}
    assert resources("dynamodb:GetRecords") == [_import("OutboxStreamArn")]
    assert {a for a in grants if a.startswith("ssm:")} == {"ssm:GetParameter"}
    assert resources("ssm:GetParameter") == [f"arn:aws:ssm:*:*:parameter/baton/{STAGE}/*"] * len(FUNCTIONS)
    for _, statement in grants["kms:Decrypt"]:
        assert statement["Condition"]["StringLike"]["kms:ViaService"] == "ssm.*.amazonaws.com"
    # What chalice put inline on each role is the hand-written policy file, unchanged.
    policy = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    for role in roles:
        (inline,) = sam["Resources"][role]["Properties"]["Policies"]
        assert inline["PolicyDocument"] == policy


@pytest.mark.slow
def test_the_delivery_sweeper_outlives_its_runs_and_reads_the_queue_index(sam: dict[str, Any]) -> None:
    from chalicelib.config import Settings

    props = sam["Resources"]["DeliverySweeper"]["Properties"]
    (schedule,) = props["Events"].values()
    assert schedule["Type"] == "Schedule" and schedule["Properties"]["Schedule"] == "rate(1 minute)"
    worst_attempt = 3 * 10 + 2 + 3  # three tries of 10 s (the notifier's timeout), their waits, the store
    assert props["Timeout"] >= Settings.from_env({}).delivery_sweep_seconds + worst_attempt
    index = {"Fn::Sub": ["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${Table}/index/*",
                         {"Table": _import("OutboxTableName")}]}
    queries = [s for roles, s in _statements(sam) if "dynamodb:Query" in _as_list(s["Action"])]
    assert any(index in _as_list(s["Resource"]) for s in queries), "the outbox's queue index"


# -- alarms ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_alarms_watch_the_app_stack_by_its_names(sam: dict[str, Any], alarms: dict[str, Any]) -> None:
    function_names = {sam["Resources"][n]["Properties"]["FunctionName"] for n in FUNCTIONS}
    api_name = sam["Resources"]["RestAPI"]["Properties"]["Name"]
    watched: dict[str, set[str]] = {}
    for node in _walk(alarms["Resources"]):
        if isinstance(node, dict) and node.get("Namespace") in ("AWS/Lambda", "AWS/ApiGateway"):
            for dim in node.get("Dimensions", []):
                watched.setdefault(f"{node['Namespace']}/{node['MetricName']}/{dim['Name']}", set()).add(
                    _sub_stage(dim["Value"]))
    assert watched["AWS/Lambda/Errors/FunctionName"] == function_names
    assert watched["AWS/Lambda/Throttles/FunctionName"] == function_names
    assert watched["AWS/ApiGateway/5XXError/ApiName"] == {api_name}


def test_the_alarms_topic_notifies_every_alarm(alarms: dict[str, Any]) -> None:
    for name, resource in alarms["Resources"].items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            props = resource["Properties"]
            assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}] == props["OKActions"], name
            assert props["AlarmName"]["Fn::Sub"].startswith("baton-${Stage}-"), name


def test_dead_letter_alarm_fires_on_the_first_message(alarms: dict[str, Any], data_plane: dict[str, Any]) -> None:
    props = alarms["Resources"]["DeadLetterQueueAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanThreshold", 0)
    (dim,) = props["Dimensions"]
    index, (_, source) = dim["Value"]["Fn::Select"][0], dim["Value"]["Fn::Select"][1]["Fn::Split"]
    assert _sub_stage(source["Fn::ImportValue"]) == f"baton-{STAGE}-DeadLetterQueueArn"
    name = _sub_stage(data_plane["Resources"]["DeadLetterQueue"]["Properties"]["QueueName"])
    assert f"arn:aws:sqs:us-east-1:123456789012:{name}".split(":")[int(index)] == name


@pytest.fixture
def emf_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    from chalicelib.observability import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO")

    def lines() -> list[dict[str, Any]]:
        out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        return [line for line in out if "_aws" in line]

    yield lines
    root.handlers[:], level = saved
    root.setLevel(level)
    logging.getLogger("baton.metrics").setLevel(logging.WARNING)


def test_the_stuck_handoffs_alarm_matches_what_the_sweeper_emits(alarms: dict[str, Any], emf_lines: Any) -> None:
    """The alarm sees the metric only if namespace, name and the whole dimension set match; the
    metric counts messages SNS has not taken and alerts Slack has not acknowledged."""
    from chalicelib.outbox.items import OutboxItem
    from chalicelib.outbox.relay import relay, report_backlog
    from chalicelib.store.memory import InMemoryOutbox

    class Failing:
        def publish(self, item: OutboxItem) -> None:
            from chalicelib.errors import DeliveryFailed

            raise DeliveryFailed("down", details={"cause": "test"})

    outbox = InMemoryOutbox()
    outbox.put(OutboxItem("t1", "handoff", {"lead_id": "l1"}, {"stage": "sql"}, created_at=1_000.0))
    outbox.put(OutboxItem("t0", "handoff", {"lead_id": "l0"}, {"stage": "sql"}, created_at=500.0))
    outbox.mark_published("t0", 530.0)  # on SNS, Slack down since: pending
    relay(outbox, Failing(), now=2_000.0)
    report_backlog(outbox, now=2_000.0)
    emitted = {}
    for line in emf_lines():
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]:
            (dims,) = directive["Dimensions"]
            emitted[(directive["Namespace"], metric["Name"])] = ({d: line[d] for d in dims}, line[metric["Name"]])
    props = alarms["Resources"]["OutboxStuckAlarm"]["Properties"]
    dims, value = emitted[(props["Namespace"], props["MetricName"])]
    assert dims == {d["Name"]: d["Value"] for d in props["Dimensions"]}
    assert value == 1_500.0, "the alert Slack has not acknowledged"
    assert emitted[("Baton", "OutboxPending")][1] == emitted[("Baton", "DeliveriesPending")][1] == 1
    assert (props["Threshold"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (900, 2, 2)
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Statistic"] == "Maximum"


def test_tables_keep_point_in_time_recovery_and_retain(data_plane: dict[str, Any]) -> None:
    tables = [r for r in data_plane["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert len(tables) == 3
    for table in tables:
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
