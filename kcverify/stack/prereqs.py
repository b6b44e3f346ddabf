"""Finding the programs the stack runs, and saying how to install the ones that are missing.

Nothing here hard-codes where a program lives: PATH first, then what the platform reports
(`pg_config --bindir`), then Debian's versioned PostgreSQL layout (/usr/lib/postgresql/<major>/bin),
which is not on PATH by default. The install hints are Debian package names, the platform CI runs on."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kcverify.stack.errors import PrerequisiteMissing, StackError

# program -> Debian package that provides it
PACKAGES = {
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
    "postgres": "postgresql-15",
    "redis-server": "redis-server",
}
MIN_JAVA = 17  # Kafka 4.x brokers need Java 17
_PG_TOOLS = ("initdb", "pg_ctl", "postgres")


@dataclass(frozen=True)
class Tools:
    """Absolute paths of the programs `up` runs, and their versions (recorded in stack.json)."""

    java: str
    java_version: str
    pg_bindir: Path
    pg_version: str
    redis_server: str
    redis_version: str


def _run(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout + out.stderr


def _has_pg_tools(directory: Path) -> bool:
    return all(os.access(directory / tool, os.X_OK) for tool in _PG_TOOLS)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def find_pg_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: $KCVERIFY_PG_BINDIR, then PATH, then
    `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    if env := os.environ.get("KCVERIFY_PG_BINDIR"):
        candidates.append(Path(env))
    if initdb := shutil.which("initdb"):
        # a symlink on PATH (as Debian's postgresql-common sets up) leads to the real bindir
        candidates.append(Path(initdb).resolve().parent)
    if shutil.which("pg_config"):
        bindir = _run(["pg_config", "--bindir"]).strip().splitlines()
        if bindir:
            candidates.append(Path(bindir[0]))
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        candidates.append(Path(found))
    for candidate in candidates:
        if _has_pg_tools(candidate):
            return candidate
    return None


def java_major(version_output: str) -> int | None:
    """17 from 'openjdk version "17.0.15" ...' (and 8 from the old '"1.8.0_392"' style)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def find_mvn() -> str | None:
    return shutil.which("mvn")


def require_mvn() -> str:
    """mvn is only needed the first time, to resolve the Kafka jars into the cache."""
    mvn = find_mvn()
    if mvn is None:
        raise PrerequisiteMissing([("mvn (Maven, resolves the Kafka jars once)", PACKAGES["mvn"])])
    return mvn


def check(need_mvn: bool = False) -> Tools:
    """Find every program `up` runs; raise one PrerequisiteMissing listing all that are missing."""
    missing: list[tuple[str, str]] = []
    java = shutil.which("java")
    java_out = _run([java, "-version"]) if java else ""
    major = java_major(java_out)
    if java is None:
        missing.append(("java (runs the Kafka broker)", PACKAGES["java"]))
    elif major is None or major < MIN_JAVA:
        missing.append((f"java {MIN_JAVA}+ (found {java_out.splitlines()[0] if java_out else '?'})",
                        PACKAGES["java"]))
    if need_mvn and find_mvn() is None:
        missing.append(("mvn (Maven, resolves the Kafka jars once)", PACKAGES["mvn"]))
    pg_bindir = find_pg_bindir()
    if pg_bindir is None:
        missing.append(("PostgreSQL server binaries (initdb, pg_ctl, postgres)", PACKAGES["postgres"]))
    redis = shutil.which("redis-server")
    if redis is None:
        missing.append(("redis-server", PACKAGES["redis-server"]))
    if missing:
        raise PrerequisiteMissing(missing)
    assert java is not None and pg_bindir is not None and redis is not None
    pg_version = _run([str(pg_bindir / "postgres"), "--version"]).strip()
    redis_out = _run([redis, "--version"])
    redis_match = re.search(r"v=(\S+)", redis_out)
    java_line = java_out.splitlines()[0] if java_out else ""
    return Tools(
        java=java,
        java_version=(m.group(1) if (m := re.search(r'"([^"]+)"', java_line)) else java_line),
        pg_bindir=pg_bindir,
        pg_version=(m.group(1) if (m := re.search(r"\(PostgreSQL\) (\S+)", pg_version)) else pg_version),
        redis_server=redis,
        redis_version=redis_match.group(1) if redis_match else redis_out.strip(),
    )


def install(packages: list[str]) -> None:
    """apt-get install the packages (root only). Tries without `apt-get update` first, since a fresh
    package list costs time and is often already there."""
    if os.geteuid() != 0:
        raise StackError(f"--install needs root; run: sudo apt-get install -y {' '.join(packages)}")
    if shutil.which("apt-get") is None:
        raise StackError(f"--install needs apt-get (Debian/Ubuntu); install by hand: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, check=False)
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-15:])
        raise StackError(f"`{' '.join(argv)}` failed (exit {out.returncode}):\n{tail}")
