"""deploy/: the Docker image, docker-compose and the Helm values parse and reference what exists
(files, env vars, image, network and volume names), and agree with the code (RUN_ENV, the run
queue of RunSettings, the jobs' Kubernetes resources). No Docker daemon, compose or cluster needed;
Dagster's, dagster-docker's and dagster-k8s's own schemas and models judge the configuration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from datman_flow.config.load import load_config
from datman_flow.config.runs_block import RunSettings
from datman_flow.instance_yaml import (
    DOCKER_NETWORK,
    DOCKER_VOLUMES,
    PG_ENV,
    PG_SCHEME,
    QC_POOL,
    REFRESH_TAG,
    RUN_ENV,
    XNAT_TAG,
    instance_config,
    instance_yaml,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs" / "deploy.md"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"datman-flow:{VERSION}"
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")  # ${VAR}, ${VAR:-x}, ${VAR:?msg}; not $${...}
SECRET_WORDS = ("PASS", "SECRET", "TOKEN")
QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?")  # 250m, 1, 512Mi, 3Gi (no spaces)


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a YAML mapping"
    return data


def dockerfile(path: Path = DEPLOY / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuation lines joined."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        current += " " + stripped
        if current.endswith("\\"):
            current = current[:-1]
            continue
        word, _, args = current.strip().partition(" ")
        instructions.append((word.upper(), args.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


def instruction_args(args: str) -> list[str]:
    """The words of COPY/ADD/ENTRYPOINT (exec form or shell form), flags (--chown=...) left out."""
    words = json.loads(args) if args.startswith("[") else args.split()
    return [word for word in words if not word.startswith("--")]


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in instructions:
        if word == "ENV":
            env.update(dict(part.split("=", 1) for part in args.split()))
    return env


def compose() -> dict:
    return load(DEPLOY / "docker-compose.yml")


def values() -> dict:
    return load(DEPLOY / "helm" / "values.yaml")


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            pairs[name.strip()] = value.strip()
    return pairs


def k8s_launcher() -> dict:
    launcher = values()["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    return launcher["config"]["k8sRunLauncher"]


# ---- the image ---------------------------------------------------------------------------------

KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
         "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def test_the_dockerfile_parses_and_builds_from_a_pinned_python_311():
    instructions = dockerfile()
    assert {word for word, _ in instructions} <= KNOWN
    assert instructions[0][0] == "FROM"
    base = instructions[0][1]
    assert re.fullmatch(r"python:3\.11-slim-[a-z]+", base), f"base image {base!r}: python:3.11-slim-<debian release>"
    assert sum(word == "FROM" for word, _ in instructions) == 1, "one stage"
    assert [word for word, _ in instructions].count("HEALTHCHECK") <= 1


def test_every_copied_file_exists_and_is_in_the_build_context():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copied = []
    for word, args in dockerfile():
        if word in ("COPY", "ADD"):
            *sources, _target = instruction_args(args)
            copied += sources
    assert copied, "the Dockerfile copies nothing"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        hits = [pattern for pattern in ignored if fnmatch(source, pattern) or source.startswith(pattern + "/")]
        assert not hits, f"COPY {source}: excluded from the build context by .dockerignore {hits}"
    for kept_out in (".venv", "data", "demo", ".git"):
        assert kept_out in ignored, f".dockerignore must keep {kept_out} out of the build context"


def test_the_image_installs_the_deploy_extra_checks_dcm2niix_and_ends_as_a_non_root_user():
    instructions = dockerfile()
    runs = " ".join(args for word, args in instructions if word == "RUN")
    assert "pip install --no-cache-dir '.[deploy]'" in runs
    assert "dcm2niix --version" in runs, "the build must prove dcm2niix from the wheel runs in the image"
    users = [(i, args) for i, (word, args) in enumerate(instructions) if word == "USER"]
    assert users, "no USER: the containers would run as root"
    last_user_at, user = users[-1]
    assert user.split(":")[0] not in ("root", "0"), f"USER {user}"
    assert user.split(":")[0] in ("1000", "datman"), "uid 1000 (datman): docs/deploy.md names it"
    assert all(word != "RUN" for word, _ in instructions[last_user_at:]), "a RUN after the last USER runs as it"
    assert "--uid 1000" in runs and "--gid 1000" in runs


def test_the_image_environment_and_its_instance_files():
    instructions = dockerfile()
    env = env_of(instructions)
    assert env["DATMAN_CONFIG_DIR"] == "/configs" and env["DATMAN_DATA_DIR"] == "/data"
    home = env["DAGSTER_HOME"]
    assert home == "/opt/dagster/home"
    copies = [instruction_args(args) for word, args in instructions if word == "COPY"]
    into_home = [words[:-1] for words in copies if words[-1].rstrip("/") == home]
    assert ["deploy/dagster.yaml", "deploy/workspace.yaml"] in into_home
    entrypoint = " ".join(instruction_args(next(args for word, args in instructions if word == "ENTRYPOINT")))
    assert "umask 002" in entrypoint and 'exec "$@"' in entrypoint


def test_docker_build_check_where_a_docker_daemon_answers():
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI here; `docker build --check -f deploy/Dockerfile .` lints the Dockerfile")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        pytest.skip("the docker CLI is here but no Docker daemon answers: `docker build --check` needs one")
    done = subprocess.run(["docker", "build", "--check", "-f", "deploy/Dockerfile", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- docker-compose ------------------------------------------------------------------------------

def test_every_service_runs_the_one_image_that_the_helm_values_use():
    services = compose()["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon", "review"}
    ours = {name: service["image"] for name, service in services.items() if name != "postgres"}
    assert set(ours.values()) == {IMAGE}, ours
    assert services["code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == IMAGE, "runs start in this image"
    build = services["code"]["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT and build["dockerfile"] == "deploy/Dockerfile"
    [deployment] = values()["dagster-user-deployments"]["deployments"]
    assert f"{deployment['image']['repository']}:{deployment['image']['tag']}" == IMAGE
    assert f"-t {IMAGE}" in (DEPLOY / "Dockerfile").read_text() and f"-t {IMAGE}" in DOCS.read_text()


def test_the_commands_of_the_services():
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["code"]["command"][:3] == ["dagster", "code-server", "start"]
    assert "datman_flow.definitions" in services["code"]["command"]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["review"]["command"][:2] == ["datman-flow", "review"]
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == "/opt/dagster/home/workspace.yaml"
        assert "/var/run/docker.sock:/var/run/docker.sock" in services[name]["volumes"], f"{name}: Docker socket"
        assert services[name]["group_add"], f"{name}: the socket's group"


def test_every_variable_the_compose_file_uses_is_in_the_env_example_and_back():
    used = {match.group(1) for match in VAR.finditer((DEPLOY / "docker-compose.yml").read_text())}
    listed = env_example()
    assert used - set(listed) == set(), f"used by docker-compose.yml but not in .env.example: {used - set(listed)}"
    assert set(listed) - used == set(), f"in .env.example but never used: {set(listed) - used}"


def test_no_password_is_written_in_the_compose_file_or_the_example():
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in SECRET_WORDS):
                assert VAR.fullmatch(str(value)), f"{name}: {key} must come from the env file, not {value!r}"
    for key, value in env_example().items():
        if any(word in key for word in SECRET_WORDS):
            assert value == "", f".env.example: {key} must be left empty"
    assert "lab.env" in (DEPLOY / ".gitignore").read_text().split() or "*.env" in (DEPLOY / ".gitignore").read_text()


def test_the_daemon_has_every_variable_the_run_containers_are_given():
    # DockerRunLauncher copies RUN_ENV from the daemon's environment and fails a run when one is unset
    daemon = compose()["services"]["daemon"]["environment"]
    assert set(RUN_ENV) <= set(daemon), f"missing in the daemon: {set(RUN_ENV) - set(daemon)}"
    assert daemon["DAGSTER_PG_HOST"] == "postgres", "the postgres service, on the network the runs join too"
    code = compose()["services"]["code"]["environment"]
    assert set(RUN_ENV) <= set(code)


def test_the_network_and_volume_names_are_those_the_run_containers_are_given():
    doc = compose()
    assert doc["networks"][DOCKER_NETWORK]["name"] == DOCKER_NETWORK
    for name, service in doc["services"].items():
        assert service["networks"] == [DOCKER_NETWORK], name
    for mount in DOCKER_VOLUMES:
        volume = mount.split(":")[0]
        assert doc["volumes"][volume]["name"] == volume
        options = doc["volumes"][volume]["driver_opts"]
        assert options["type"] == "none" and options["o"] == "bind" and VAR.fullmatch(options["device"])
    for name in ("code", "review"):  # the same paths as in a run container
        assert doc["services"][name]["volumes"] == list(DOCKER_VOLUMES), name
    # the runs' stdout/stderr are written on the data volume: the webserver, which shows them, mounts it
    logs = instance_config(RunSettings(), "postgres", "docker")["compute_logs"]["config"]["base_dir"]
    data_mount = DOCKER_VOLUMES[0].split(":")
    assert logs.startswith(data_mount[1] + "/") and ":".join(data_mount) in doc["services"]["webserver"]["volumes"]
    env = env_of(dockerfile())
    assert {mount.split(":")[1] for mount in DOCKER_VOLUMES} == {env["DATMAN_DATA_DIR"], env["DATMAN_CONFIG_DIR"]}


def test_the_workspace_points_at_the_code_service():
    [entry] = load(DEPLOY / "workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    services = compose()["services"]
    assert server["host"] in services
    command = services[server["host"]]["command"]
    assert int(command[command.index("-p") + 1]) == server["port"]
    assert command[command.index("-h") + 1] == "0.0.0.0"
    assert server["location_name"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"][
        "code_location_name"]


# ---- deploy/dagster.yaml -------------------------------------------------------------------------

def test_the_instance_file_is_the_generators_output():
    config = load_config(ROOT / "configs")
    assert (DEPLOY / "dagster.yaml").read_text() == instance_yaml(config.runs, "postgres", "docker"), (
        "deploy/dagster.yaml is stale: datman-flow instance yaml --storage postgres --launcher docker "
        "--out deploy/dagster.yaml")


def test_the_instance_file_passes_dagsters_schema_and_its_launchers(tmp_path):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "DockerRunLauncher"
    dagster_docker = pytest.importorskip("dagster_docker", reason="dagster-docker (the deploy extra) is not installed")
    launcher = getattr(dagster_docker, config["run_launcher"]["class"])
    checked = validate_config(launcher.config_type(), config["run_launcher"]["config"])
    assert checked.success, [error.message for error in checked.errors]


# ---- Kubernetes: the Helm values -----------------------------------------------------------------

def chart_concurrency(doc: dict) -> dict:
    """The chart's `concurrency` values as its template writes them into dagster.yaml."""
    block = doc["concurrency"]
    assert block["enabled"] is True
    runs, pools = block["runs"], block["pools"]
    return {"runs": {"max_concurrent_runs": runs["maxConcurrentRuns"],
                     "tag_concurrency_limits": runs["tagConcurrencyLimits"]},
            "pools": {"granularity": pools["granularity"], "default_limit": pools["defaultLimit"]}}


def test_the_charts_run_queue_and_qc_pool_are_runs_yml_defaults():
    defaults = RunSettings()
    concurrency = chart_concurrency(values())
    assert concurrency["runs"]["max_concurrent_runs"] == defaults.max_concurrent_runs
    assert concurrency["runs"]["tag_concurrency_limits"] == [
        {"key": XNAT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": defaults.pulls_per_xnat},
        {"key": REFRESH_TAG, "limit": 1}]
    assert concurrency["pools"] == {"granularity": "op", "default_limit": defaults.qc_slots}
    assert concurrency == instance_config(defaults)["concurrency"], "Kubernetes and Docker queue runs alike"
    assert QC_POOL == "qc"


def test_the_charts_instance_passes_dagsters_schema(tmp_path):
    # what the chart writes: the queued coordinator with none of the limits it would conflict with
    from dagster._core.instance.config import dagster_instance_config

    queued = values()["dagsterDaemon"]["runCoordinator"]
    assert queued["type"] == "QueuedRunCoordinator"
    conflicting = queued["config"]["queuedRunCoordinator"]
    assert conflicting["maxConcurrentRuns"] is None and not conflicting["tagConcurrencyLimits"]
    assert conflicting["blockOpConcurrencyLimitedRuns"] is None
    instance = {"run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
                "concurrency": chart_concurrency(values())}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == RunSettings().qc_slots


def test_the_code_location_and_the_run_pods_mount_the_documented_volumes():
    doc = values()
    [deployment] = doc["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "datman_flow.definitions"]
    launcher = k8s_launcher()
    assert launcher["volumes"] == deployment["volumes"] and launcher["volumeMounts"] == deployment["volumeMounts"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in launcher["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in launcher["volumeMounts"]}
    env = env_of(dockerfile())
    assert {mounts[name] for name in claims} == {env["DATMAN_DATA_DIR"], env["DATMAN_CONFIG_DIR"]}
    documented = [part for block in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
                  for part in yaml.safe_load_all(block) if part and part.get("kind") == "PersistentVolumeClaim"]
    assert {pvc["metadata"]["name"] for pvc in documented} == set(claims.values())
    data_claim = next(claim for name, claim in claims.items() if mounts[name] == env["DATMAN_DATA_DIR"])
    [data_pvc] = [pvc for pvc in documented if pvc["metadata"]["name"] == data_claim]
    assert data_pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every run pod mounts the data at once"


def test_every_run_env_variable_reaches_the_run_pods():
    doc, launcher = values(), k8s_launcher()
    given = dict(item.split("=", 1) for item in launcher["envVars"])  # NAME=value: not read from the daemon's env
    secrets = [secret["name"] for secret in launcher["envSecrets"]]
    assert secrets == ["datman-secrets"]
    secret_line = next(line for line in DOCS.read_text().splitlines() if "create secret generic datman-secrets" in line)
    in_secret = set(re.findall(r"--from-literal=([A-Z_]+)=", secret_line))
    from_chart = {PG_ENV["password"]} if doc["global"]["postgresqlSecretName"] else set()
    missing = set(RUN_ENV) - set(given) - in_secret - from_chart
    assert missing == set(), f"RUN_ENV variables no run pod gets: {missing}"
    postgres = doc["postgresql"]
    assert given[PG_ENV["hostname"]] == postgres["postgresqlHost"]
    assert given[PG_ENV["username"]] == postgres["postgresqlUsername"]
    assert given[PG_ENV["db_name"]] == postgres["postgresqlDatabase"]
    assert int(given[PG_ENV["port"]]) == postgres["service"]["port"]
    assert postgres["postgresqlScheme"] == PG_SCHEME  # the driver the image has (psycopg2)
    env = env_of(dockerfile())
    assert given["DATMAN_DATA_DIR"] == env["DATMAN_DATA_DIR"] and given["DATMAN_CONFIG_DIR"] == env["DATMAN_CONFIG_DIR"]


def test_the_run_launcher_values_pass_dagster_k8s(tmp_path):
    pytest.importorskip("dagster_k8s", reason="dagster-k8s (the deploy extra) is not installed")
    from dagster._config import validate_config
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    launcher = k8s_launcher()
    pod_spec = launcher["runK8sConfig"]["podSpecConfig"]
    # as the chart's template renders k8sRunLauncher into dagster.yaml (with what the chart adds itself)
    rendered = {"instance_config_map": "datman-dagster-instance", "postgres_password_secret": "dagster-postgresql-secret",
                "dagster_home": "/opt/dagster/dagster_home", "load_incluster_config": True,
                "env_secrets": [secret["name"] for secret in launcher["envSecrets"]], "env_vars": launcher["envVars"],
                "volumes": launcher["volumes"], "volume_mounts": launcher["volumeMounts"],
                "run_k8s_config": {"pod_spec_config": pod_spec}}
    checked = validate_config(K8sRunLauncher.config_type(), rendered)
    assert checked.success, [error.message for error in checked.errors]
    # the Kubernetes models: unknown or misspelt keys in a volume, mount or pod spec raise here
    K8sContainerContext(env_secrets=rendered["env_secrets"], env_vars=launcher["envVars"], volumes=launcher["volumes"],
                        volume_mounts=launcher["volumeMounts"],
                        run_k8s_config=UserDefinedDagsterK8sConfig(pod_spec_config=pod_spec))
    assert pod_spec["securityContext"]["runAsUser"] == 1000 and pod_spec["securityContext"]["runAsNonRoot"] is True


# ---- the jobs' resources --------------------------------------------------------------------------

def test_every_job_asks_for_valid_kubernetes_resources():
    pytest.importorskip("dagster_k8s", reason="dagster-k8s (the deploy extra) is not installed")
    from dagster_k8s.job import get_user_defined_k8s_config
    from dagster_k8s.models import k8s_model_from_dict
    from kubernetes.client import V1ResourceRequirements
    from kubernetes.utils import parse_quantity

    from datman_flow.definitions import defs
    from datman_flow.defs.jobs import K8S_CONFIG_TAG, RUN_RESOURCES

    jobs = {job.name: job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert set(jobs) == set(RUN_RESOURCES), "every job, and only the jobs, has its resources"
    for name, job in jobs.items():
        config = get_user_defined_k8s_config(job.tags)  # dagster-k8s's own schema for the tag
        resources = config.container_config["resources"]
        k8s_model_from_dict(V1ResourceRequirements, resources)
        for kind in ("requests", "limits"):
            for quantity in resources.get(kind, {}).values():
                assert QUANTITY.fullmatch(quantity), f"{name}: {quantity!r} is not a Kubernetes quantity"
                parse_quantity(quantity)
        assert parse_quantity(resources["limits"]["memory"]) >= parse_quantity(resources["requests"]["memory"]), name
        assert json.loads(job.tags[K8S_CONFIG_TAG]) == {"container_config": {"resources": RUN_RESOURCES[name]}}
    ingest = RUN_RESOURCES["ingest_session"]["requests"]
    assert parse_quantity(ingest["memory"]) >= RunSettings().qc_gb_per_session * 2**30, "the QC step's peak"
    assert ingest == {"cpu": "1", "memory": "3Gi"}
