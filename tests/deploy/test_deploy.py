"""The deployment files agree with the code: CLI commands and options, settings, queues and time limits.

Nothing here needs Docker or a cluster: docker-compose.yml, the Dockerfile, the kustomize base in
deploy/k8s, the systemd units and deploy/README.md are parsed and checked against `dispatcher.cli.main.main`,
`dispatcher.config.Settings`, `dispatcher.contracts` and the Celery app's `task_time_limit`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from dispatcher import contracts
from dispatcher.cli.main import main
from dispatcher.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
SYSTEMD = ROOT / "deploy" / "systemd"
README = ROOT / "deploy" / "README.md"
ENV_EXAMPLE = SYSTEMD / "env.example"
PREFIX = "DISPATCHER_"
SECRET_REF = "campaign-dispatcher-secrets"
SEPARATORS = {";", "&&", "||", "|", "&"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob"}


# ---------------------------------------------------------------- helpers: the code side


def secret_typed_settings() -> set[str]:
    return {name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)}


def secret_settings() -> set[str]:
    """Settings that are or may embed a credential: never in a ConfigMap, never written in a file."""
    return secret_typed_settings() | {"database_url", "redis_url", "broker_url"}


@cache
def task_time_limit() -> int:
    """The Celery app's hard time limit (imported lazily: importing workers.app reads the settings)."""
    from workers.app import app

    limit = app.conf.task_time_limit
    assert isinstance(limit, int | float) and limit > 0
    return int(limit)


def is_setting(variable: str) -> bool:
    """`DISPATCHER_API_PORT` names the field `api_port` of Settings."""
    return variable.startswith(PREFIX) and variable[len(PREFIX) :].lower() in Settings.model_fields


def option_names(command: click.Command) -> dict[str, click.Option]:
    return {name: p for p in command.params if isinstance(p, click.Option) for name in [*p.opts, *p.secondary_opts]}


def cli_errors(argv: list[str]) -> list[str]:
    """Why `dispatcher *argv` is not a real command line (empty when it is)."""
    command: click.Command = main
    path = "dispatcher"
    words = list(argv)
    while isinstance(command, click.Group):
        if not words or words[0].startswith("-"):
            return [f"{path}: missing sub-command in {argv}"]
        name = words.pop(0)
        if name not in command.commands:
            return [f"{path} has no sub-command {name!r} (known: {sorted(command.commands)})"]
        command, path = command.commands[name], f"{path} {name}"
    return argument_errors(command, path, words)


def argument_errors(command: click.Command, path: str, words: list[str]) -> list[str]:
    """Options must be declared by the command; positionals must match its arguments."""
    options, errors, positionals = option_names(command), [], []
    tokens = iter(words)
    for word in tokens:
        if not word.startswith("-"):
            positionals.append(word)
            continue
        option = options.get(word.split("=", 1)[0])
        if option is None:
            errors.append(f"{path} has no option {word.split('=', 1)[0]!r} (known: {sorted(options)})")
        elif not option.is_flag and "=" not in word and next(tokens, None) is None:
            errors.append(f"{path} {word} needs a value")
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if len(positionals) != len(arguments):
        errors.append(f"{path} takes {len(arguments)} argument(s), got {positionals}")
    return errors


def option_value(argv: list[str], *names: str) -> str | None:
    """The value given to an option (`-Q x` or `--queues=x`) in an argv."""
    for i, word in enumerate(argv):
        name, _, inline = word.partition("=")
        if name in names:
            return inline or (argv[i + 1] if i + 1 < len(argv) else None)
    return None


# ---------------------------------------------------------------- helpers: reading the files


def is_dispatcher(word: str) -> bool:
    return word == "dispatcher" or word.endswith("/bin/dispatcher")


def shell_words(script: str) -> list[str]:
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def simple_commands(words: list[str]) -> Iterator[list[str]]:
    """Split shell words at ; && || | &."""
    current: list[str] = []
    for word in [*words, ";"]:
        if word not in SEPARATORS:
            current.append(word)
        elif current:
            yield current
            current = []


def strip_wrappers(words: list[str]) -> list[str]:
    """Drop what runs a program without being it: VAR=x, exec, sudo [-u USER], docker compose exec|run SERVICE."""
    while words:
        if re.fullmatch(r"\w+=.*", words[0]) or words[0] in {"exec", "env"}:
            words = words[1:]
        elif words[0] == "sudo":
            words = words[3:] if words[1:2] == ["-u"] else words[1:]
        elif words[:3] in (["docker", "compose", "exec"], ["docker", "compose", "run"]):
            rest = words[3:]
            while rest and rest[0].startswith("-"):
                rest = rest[1:]
            words = rest[1:]
        else:
            return words
    return words


def dispatcher_argvs(words: list[str]) -> list[list[str]]:
    """Every `dispatcher ...` invocation in a command (argv list or shell words), without the program."""
    found = []
    for command in map(strip_wrappers, simple_commands(words)):
        if command[:2] in (["sh", "-c"], ["bash", "-c"]) and len(command) > 2:
            found += dispatcher_argvs(shell_words(command[2]))
        elif command and is_dispatcher(command[0]):
            found.append(command[1:])
    return found


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def as_argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shell_words(command) if isinstance(command, str) else [str(word) for word in command]


def service_argv(service: dict[str, Any]) -> list[str]:
    return as_argv(service.get("command"))


def app_services() -> dict[str, dict[str, Any]]:
    """Compose services that run the dispatcher image."""
    return {name: s for name, s in services().items() if service_argv(s)[:1] == ["dispatcher"]}


def services_running(*subcommand: str) -> dict[str, dict[str, Any]]:
    n = len(subcommand)
    return {name: s for name, s in app_services().items() if tuple(service_argv(s)[1 : 1 + n]) == subcommand}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def healthcheck_words(service: dict[str, Any]) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test") or []
    if isinstance(test, str):
        return shell_words(test)
    if test[:1] == ["CMD-SHELL"]:
        return shell_words(test[1])
    return [str(word) for word in test[1:]]


def seconds(duration: str | int) -> float:
    """Compose (`2m30s`) or systemd (`150`, `2min 30s`) durations."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|sec|h|m|s)?", str(duration))
    assert parts, f"not a duration: {duration!r}"
    return sum(float(value) * units[unit] for value, unit in parts)


@cache
def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every YAML document under deploy/k8s."""
    found = []
    for path in sorted(K8S.rglob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


def kind(kind_name: str) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_documents() if doc.get("kind") == kind_name]


def kustomization() -> dict[str, Any]:
    (doc,) = kind("Kustomization")
    return doc


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads() -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_documents() if doc.get("kind") in WORKLOAD_KINDS]


def container_argv(container: dict[str, Any]) -> list[str]:
    return [*as_argv(container.get("command")), *as_argv(container.get("args"))]


def deployments_running(*subcommand: str) -> list[dict[str, Any]]:
    n = len(subcommand)
    return [
        d
        for d in kind("Deployment")
        if any(
            argv[:1] == ["dispatcher"] and tuple(argv[1 : 1 + n]) == subcommand
            for argv in map(container_argv, containers(d))
        )
    ]


def main_argv(workload: dict[str, Any]) -> list[str]:
    return container_argv(pod_spec(workload)["containers"][0])


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def unit_paths() -> list[Path]:
    return sorted(SYSTEMD.glob("*.service"))


def parse_unit(path: Path) -> dict[str, list[str]]:
    """A systemd unit as {"Section.Key": [values...]} (keys may repeat)."""
    parsed: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        parsed.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return parsed


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def readme_code_lines() -> list[str]:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), flags=re.S)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]


def dockerfile_env() -> list[str]:
    """Variable names set by ENV instructions (continuation lines included)."""
    instructions = re.findall(r"^ENV\s.*(?:\\\n.*)*", DOCKERFILE.read_text(), flags=re.M)
    return re.findall(r"\b([A-Z_][A-Z0-9_]*)=", "\n".join(instructions))


def dockerfile_argv() -> list[str]:
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE.read_text(), flags=re.M)
    argv = json.loads(cmd)
    assert isinstance(argv, list)
    return [str(word) for word in argv]


def deploy_files() -> list[Path]:
    files = [COMPOSE, DOCKERFILE, README, *K8S.rglob("*"), *SYSTEMD.rglob("*")]
    return [path for path in files if path.is_file()]


# ---------------------------------------------------------------- every command line is a real one


def all_invocations() -> list[tuple[str, list[str]]]:
    """(where, argv after `dispatcher`) for every dispatcher command the deployment files run."""
    found: list[tuple[str, list[str]]] = []
    for name, service in services().items():
        for words in (service_argv(service), healthcheck_words(service)):
            found += [(f"compose {name}", argv) for argv in dispatcher_argvs(words)]
    for file_name, doc in k8s_documents():
        if doc.get("kind") in WORKLOAD_KINDS:
            for container in containers(doc):
                found += [(f"k8s {file_name}", argv) for argv in dispatcher_argvs(container_argv(container))]
    for path in unit_paths():
        for line in parse_unit(path).get("Service.ExecStart", []):
            found += [(path.name, argv) for argv in dispatcher_argvs(shell_words(line))]
    found += [("Dockerfile CMD", argv) for argv in dispatcher_argvs(dockerfile_argv())]
    for line in readme_code_lines():
        found += [("README", argv) for argv in dispatcher_argvs(shell_words(line))]
    return found


def test_the_command_checker_rejects_typos_in_commands_and_options() -> None:
    assert cli_errors(["worker", "-Q", "send.sms", "-c", "4"]) == []
    assert cli_errors(["accounts", "create", "acme"]) == []
    assert cli_errors(["wroker"])
    assert cli_errors(["api", "--prot", "8000"])
    assert cli_errors(["db"])
    assert cli_errors(["db", "upgrade", "extra"])
    assert dispatcher_argvs(shell_words("sudo -u dispatcher sh -c 'set -a; exec /x/bin/dispatcher wroker'")) == [
        ["wroker"]
    ]


def test_every_deployment_file_runs_dispatcher_commands() -> None:
    sources = {where.split()[0] for where, _ in all_invocations()}
    assert {"compose", "k8s", "Dockerfile", "README"} <= sources
    assert any(where.endswith(".service") for where, _ in all_invocations())


@pytest.mark.parametrize(
    ("where", "argv"), all_invocations(), ids=[f"{w}: {' '.join(a)}" for w, a in all_invocations()]
)
def test_every_dispatcher_command_exists_in_the_cli(where: str, argv: list[str]) -> None:
    assert cli_errors(argv) == [], where


def test_the_image_is_slim_python_3_11_runs_as_non_root_and_leaves_dev_tools_out() -> None:
    text = DOCKERFILE.read_text()
    assert set(re.findall(r"^FROM\s+(\S+)", text, flags=re.M)) == {"python:3.11-slim"}
    *_, user = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert user.split(":")[0] not in {"root", "0"}
    assert "[dev]" not in text
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", ".env"} <= ignored


# ---------------------------------------------------------------- every variable is a setting


def test_every_dispatcher_variable_named_in_a_deployment_file_is_a_setting() -> None:
    for path in deploy_files():
        for variable in set(re.findall(r"\bDISPATCHER_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())):
            assert is_setting(variable), f"{path.relative_to(ROOT)}: {variable} is not a field of Settings"


def test_app_services_in_compose_set_only_dispatcher_settings() -> None:
    for name, service in app_services().items():
        for variable in environment(service):
            assert is_setting(variable), f"compose {name}: {variable}"


def test_the_configmap_env_example_and_dockerfile_set_only_settings() -> None:
    variables = [key for map_ in kind("ConfigMap") for key in map_.get("data", {})]
    variables += list(env_file(ENV_EXAMPLE))
    variables += [name for name in dockerfile_env() if name.startswith(PREFIX)]
    for workload in workloads():
        variables += [env["name"] for container in containers(workload) for env in container.get("env", [])]
    assert variables
    assert [v for v in variables if not is_setting(v)] == []


# ---------------------------------------------------------------- compose


def test_compose_reuses_one_app_definition_for_every_app_service() -> None:
    anchor = compose()["x-app"]
    for name, service in app_services().items():
        assert (service.get("image"), service.get("build")) == (anchor["image"], anchor["build"]), name


def test_migrate_runs_once_and_api_workers_and_beat_wait_for_it() -> None:
    (migrate,) = services_running("db", "upgrade")
    assert migrate == "migrate"
    assert str(services()["migrate"].get("restart", "no")) == "no"
    waiting = {**services_running("api"), **services_running("worker"), **services_running("beat")}
    assert len(waiting) >= 4
    for name, service in waiting.items():
        condition = service["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_compose_redis_keeps_the_queue_on_disk_and_never_evicts() -> None:
    redis = services()["redis"]
    argv = service_argv(redis)
    settings = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert settings["--appendonly"] == "yes"
    assert settings["--appendfsync"] == "everysec"
    assert settings["--maxmemory-policy"] == "noeviction"
    assert str(redis["image"]).startswith("redis:7")
    assert "redis-cli" in healthcheck_words(redis) and "ping" in healthcheck_words(redis)
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])


def test_compose_postgres_is_checked_with_pg_isready_and_keeps_its_data() -> None:
    postgres = services()["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert healthcheck_words(postgres)[0] == "pg_isready"
    assert any(str(volume).endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])


def test_flower_and_sandbox_run_only_behind_their_profiles() -> None:
    for subcommand, profile in (("flower", "ops"), ("sandbox", "sandbox")):
        running = services_running(subcommand)
        assert running, subcommand
        assert all(profile in service.get("profiles", []) for service in running.values()), subcommand


def test_compose_runs_exactly_one_beat() -> None:
    (beat,) = services_running("beat").values()
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert "profiles" not in beat


def test_compose_secrets_are_required_variables_without_defaults() -> None:
    text = COMPOSE.read_text()
    for name, modifier in re.findall(r"\$\{(\w+)([^}]*)\}", text):
        if re.search(r"PASSWORD|SECRET|TOKEN", name):
            assert modifier.startswith(":?"), f"${{{name}{modifier}}} must be written ${{{name}:?...}}"
    assert "${POSTGRES_PASSWORD:?" in text and "${DISPATCHER_FLOWER_PASSWORD:?" in text
    for name, service in app_services().items():
        for variable, value in environment(service).items():
            setting = variable[len(PREFIX) :].lower()
            # A SecretStr, or a URL with credentials, comes from a required variable, never from the file.
            if setting in secret_typed_settings() or (setting in secret_settings() and "@" in value):
                assert "${" in value and ":?" in value, f"compose {name}: {variable} is written in the file"


def test_compose_api_and_workers_have_healthchecks() -> None:
    for name, service in services_running("api").items():
        words = healthcheck_words(service)
        assert words[:2] == ["python", "-c"] and "/healthz" in words[2], name
    for name, service in services_running("worker").items():
        script = " ".join(healthcheck_words(service))
        assert "celery -A workers.app inspect ping -d celery@$$HOSTNAME" in script, name


def test_compose_workers_get_more_than_the_task_time_limit_to_stop() -> None:
    for name, service in services_running("worker").items():
        assert seconds(service["stop_grace_period"]) > task_time_limit(), name


def test_compose_workers_consume_every_queue() -> None:
    queues = [option_value(service_argv(s), "-Q", "--queues") or "" for s in services_running("worker").values()]
    consumed = {queue for value in queues for queue in value.split(",")}
    assert consumed == set(contracts.ALL_QUEUES)


# ---------------------------------------------------------------- kubernetes


def test_every_kustomize_resource_exists_and_every_manifest_is_listed() -> None:
    resources = kustomization()["resources"]
    assert all((K8S / resource).is_file() for resource in resources), resources
    manifests = {path.name for path in K8S.glob("*.y*ml")} - {"kustomization.yaml"}
    assert manifests == set(resources)


def test_every_container_uses_the_one_image_placeholder_that_kustomize_replaces() -> None:
    (image,) = kustomization()["images"]
    for workload in workloads():
        for container in containers(workload):
            assert container["image"] == image["name"], workload["metadata"]["name"]


def test_every_container_has_resource_requests_and_limits() -> None:
    for workload in workloads():
        for container in containers(workload):
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), (workload["metadata"]["name"], bound)


def test_secrets_are_referenced_never_committed() -> None:
    assert kind("Secret") == []
    refs = [
        source["secretRef"]["name"]
        for workload in workloads()
        for container in containers(workload)
        for source in container.get("envFrom", [])
        if "secretRef" in source
    ]
    assert refs and set(refs) == {SECRET_REF}
    assert SECRET_REF in README.read_text()
    for config_map in kind("ConfigMap"):
        assert not {key[len(PREFIX) :].lower() for key in config_map["data"]} & secret_settings()


def test_every_configmap_a_container_reads_is_in_the_base() -> None:
    names = {config_map["metadata"]["name"] for config_map in kind("ConfigMap")}
    for workload in workloads():
        for container in containers(workload):
            refs = {s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s}
            assert refs and refs <= names, workload["metadata"]["name"]


def test_api_is_ready_on_readyz_and_alive_on_healthz() -> None:
    (api,) = deployments_running("api")
    container = pod_spec(api)["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert any(labels_match(svc["spec"]["selector"], pod_labels(api)) for svc in kind("Service"))


def test_k8s_workers_get_more_than_the_task_time_limit_to_stop() -> None:
    workers = deployments_running("worker")
    assert workers
    for worker in workers:
        assert pod_spec(worker)["terminationGracePeriodSeconds"] > task_time_limit(), worker["metadata"]["name"]


def test_k8s_workers_are_restarted_when_their_node_stops_answering_ping() -> None:
    for worker in deployments_running("worker"):
        command = pod_spec(worker)["containers"][0]["livenessProbe"]["exec"]["command"]
        assert command[:2] == ["sh", "-c"]
        assert "celery -A workers.app inspect ping -d celery@$HOSTNAME" in command[2]
        # Inside sh, $(HOSTNAME) would run a command called HOSTNAME, and Kubernetes does not expand it.
        assert "$(" not in command[2]


def test_k8s_workers_consume_every_queue() -> None:
    queues = [option_value(main_argv(d), "-Q", "--queues") or "" for d in deployments_running("worker")]
    assert {queue for value in queues for queue in value.split(",")} == set(contracts.ALL_QUEUES)


def test_every_scaled_object_scales_a_worker_on_the_queues_it_consumes() -> None:
    workers = {d["metadata"]["name"]: d for d in deployments_running("worker")}
    scaled = kind("ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == set(workers)
    for scaled_object in scaled:
        worker = workers[scaled_object["spec"]["scaleTargetRef"]["name"]]
        queues = set((option_value(main_argv(worker), "-Q", "--queues") or "").split(","))
        lists = {trigger["metadata"]["listName"] for trigger in scaled_object["spec"]["triggers"]}
        assert lists == queues
        assert all(trigger["type"] == "redis" for trigger in scaled_object["spec"]["triggers"])
        # The autoscaler owns the replica count; a fixed one would fight it on every apply.
        assert "replicas" not in worker["spec"]


def test_sms_worker_scales_on_send_sms_and_campaigns() -> None:
    lists = {t["metadata"]["listName"] for s in kind("ScaledObject") for t in s["spec"]["triggers"]}
    assert {contracts.QUEUE_SEND_SMS, contracts.QUEUE_CAMPAIGNS} <= lists


def test_k8s_runs_exactly_one_beat_recreated_never_rolled() -> None:
    (beat,) = deployments_running("beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_migrations_run_as_a_job() -> None:
    jobs = [main_argv(job) for job in kind("Job")]
    assert ["dispatcher", "db", "upgrade"] in jobs


def test_workers_and_api_have_disruption_budgets() -> None:
    budgets = [pdb["spec"]["selector"]["matchLabels"] for pdb in kind("PodDisruptionBudget")]
    for deployment in [*deployments_running("worker"), *deployments_running("api")]:
        assert any(labels_match(selector, pod_labels(deployment)) for selector in budgets), deployment["metadata"]
    for selector in budgets:
        assert any(labels_match(selector, pod_labels(d)) for d in kind("Deployment")), selector


# ---------------------------------------------------------------- systemd


def test_every_unit_reads_the_env_file_and_runs_the_venv_dispatcher_with_restart() -> None:
    assert {path.name for path in unit_paths()} >= {
        "dispatcher-api.service",
        "dispatcher-worker@.service",
        "dispatcher-beat.service",
        "dispatcher-flower.service",
    }
    for path in unit_paths():
        unit = parse_unit(path)
        assert unit.get("Service.EnvironmentFile") == ["/etc/campaign-dispatcher/env"], path.name
        (exec_start,) = unit["Service.ExecStart"]
        assert exec_start.startswith("/opt/campaign-dispatcher/.venv/bin/dispatcher "), path.name
        assert unit.get("Service.Restart") == ["on-failure"], path.name


def test_the_systemd_worker_gets_more_than_the_task_time_limit_to_stop() -> None:
    unit = parse_unit(SYSTEMD / "dispatcher-worker@.service")
    (timeout,) = unit["Service.TimeoutStopSec"]
    assert seconds(timeout) > task_time_limit()
    assert unit["Service.KillMode"] == ["mixed"]


def test_env_example_holds_placeholders_not_secrets() -> None:
    for variable, value in env_file(ENV_EXAMPLE).items():
        setting = variable[len(PREFIX) :].lower()
        if setting in secret_typed_settings():
            assert value == "change-me", variable
        elif setting in secret_settings() and "@" in value:
            assert ":change-me@" in value, variable
