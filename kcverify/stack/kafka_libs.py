"""The Kafka broker's jars: resolved once from Maven Central with the pom beside this module
(kafka/pom.xml), cached, and reused by every later start.

The Apache download archive is not reachable from CI machines, Maven Central is, and the broker is
published there as ordinary jars. Resolution goes to a temporary directory and is renamed into place
only when complete (a `.complete` marker), so an interrupted download is never mistaken for a cache."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from kcverify.stack.errors import StackError
from kcverify.stack.prereqs import require_mvn

POM = Path(__file__).parent / "kafka" / "pom.xml"
ENV_LIBS = "KCVERIFY_KAFKA_LIBS"
_MARKER = ".complete"
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
# jar name prefixes of SLF4J 1.x bindings and SLF4J 2.x providers
_BINDINGS = ("slf4j-reload4j", "slf4j-log4j12", "slf4j-simple", "slf4j-jdk14", "slf4j-nop",
             "logback-classic", "log4j-slf4j-impl", "log4j-slf4j2-impl")


def kafka_version(pom: Path = POM) -> str:
    """The `kafka.version` property of the pom: the one place the version is written."""
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _NS)
    if node is None or not (node.text or "").strip():
        raise StackError(f"{pom} has no <kafka.version> property")
    return (node.text or "").strip()


def libs_dir(version: str) -> Path:
    """$KCVERIFY_KAFKA_LIBS, else ~/.cache/kcverify/kafka-libs-<version> ($XDG_CACHE_HOME honoured)."""
    if env := os.environ.get(ENV_LIBS):
        return Path(env).expanduser().absolute()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kcverify" / f"kafka-libs-{version}"


def is_complete(directory: Path) -> bool:
    return (directory / _MARKER).is_file()


def slf4j_bindings(directory: Path) -> list[str]:
    return sorted(jar.name for jar in directory.glob("*.jar") if jar.name.startswith(_BINDINGS))


def ensure_libs(version: str | None = None, report: Callable[[str], None] = lambda _: None) -> Path:
    """The directory of broker jars, resolving it with Maven when it is not cached yet."""
    version = version or kafka_version()
    target = libs_dir(version)
    if is_complete(target):
        return target
    if os.environ.get(ENV_LIBS) and target.is_dir() and any(target.glob("kafka_2.13-*.jar")):
        return target  # jars provided by hand: the user vouches for them
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `up`s at once resolve only once
        if is_complete(target):
            return target
        if os.environ.get(ENV_LIBS) and target.is_dir() and any(target.iterdir()):
            raise StackError(f"{target} (${ENV_LIBS}) holds files but no Kafka jars; "
                             "empty it or point the variable elsewhere")
        mvn = require_mvn()
        report(f"resolving Apache Kafka {version} jars from Maven Central into {target} "
               "(first run only; about a minute)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            argv = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
                    "-DincludeScope=runtime", f"-DoutputDirectory={tmp}", f"-Dkafka.version={version}"]
            try:
                out = subprocess.run(argv, capture_output=True, text=True, check=False,
                                     stdin=subprocess.DEVNULL, timeout=1800)
            except subprocess.TimeoutExpired as exc:
                raise StackError(f"resolving the Kafka jars took over 30 min: {' '.join(argv)}") from exc
            if out.returncode != 0:
                tail = "\n".join((out.stdout + out.stderr).splitlines()[-25:])
                raise StackError(f"resolving the Kafka jars failed (exit {out.returncode}): "
                                 f"{' '.join(argv)}\n{tail}")
            bindings = slf4j_bindings(tmp)
            if len(bindings) != 1:
                raise StackError(f"expected exactly one SLF4J binding among the Kafka jars, found "
                                 f"{bindings or 'none'}; fix {POM}")
            if not list(tmp.glob(f"kafka_2.13-{version}.jar")):
                raise StackError(f"Maven did not deliver kafka_2.13-{version}.jar into {tmp}")
            (tmp / _MARKER).write_text(version + "\n")
            if target.exists():
                shutil.rmtree(target)  # an interrupted earlier attempt
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
