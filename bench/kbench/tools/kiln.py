"""kiln: the binary built from this checkout, run rootless; what it cannot do yet is n/a."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..setup import BaseImage, BenchUser, make_user_dir
from ..util import Sample, sh, tail, timed
from .base import Tool, Unsupported, plain_cached_steps


#: Output that means "kiln does not do this yet" rather than "kiln is broken".
NOT_YET = re.compile(
    r"not (yet )?(supported|implemented)|unsupported|unimplemented|not yet|unrecognized subcommand", re.I
)


def _subcommands(help_text: str) -> set[str]:
    """Subcommand names from clap's `--help` (the lines under `Commands:`)."""
    names: set[str] = set()
    in_list = False
    for line in help_text.splitlines():
        if re.match(r"^(Commands|SUBCOMMANDS):", line.strip()):
            in_list = True
            continue
        if in_list:
            m = re.match(r"^\s{2,}([a-z][\w-]*)\b", line)
            if m:
                names.add(m.group(1))
            elif line.strip() and not line.startswith(" "):
                in_list = False
    return names


#: A Rust `Debug` rendering of a struct inside an error message.
_DEBUG_REPR = re.compile(r"\b\w+\(\w+ \{.*\}\)")


def _repository(ref: str) -> str:
    """'127.0.0.1:5000/a/b:tag' → '127.0.0.1:5000/a/b' (a colon after the last slash starts the tag)."""
    head, _, last = ref.rpartition("/")
    name = last.split("@", 1)[0].split(":", 1)[0]
    return f"{head}/{name}" if head else name


class Kiln(Tool):
    """The kiln binary built from this checkout, run as the bench user (rootless)."""

    key = "kiln"
    label = "kiln"
    rootless = True

    def __init__(self, binary: Path | None, why_not: str, user: BenchUser, store: Path):
        super().__init__()
        self.bin = binary
        self.user = user
        self.store = store
        self.root = store / "root"
        self.preload_dir = store / "preload"
        self.subcommands: set[str] = set()
        self.sub_help: dict[str, str] = {}  # subcommand → its --help text
        self.root_before_sub = False  # --root only as a top-level flag
        self.preload_ok = True
        self.unpack_ok = True  # whether a RUN on each base extracts its layers before timing
        if binary is None:
            self.available, self.reason = False, why_not
        self.method_notes.append(
            "kiln: `kiln build --root DIR -f FILE -t NAME CONTEXT`, run rootless as the bench user; cold = a "
            "fresh --root with the base images loaded into it first (a FROM-only build of their OCI layouts, "
            "then an untagged `FROM base` + `RUN : kiln-bench unpacks the base` build, so the base layers are "
            "unpacked into kiln's snapshots before timing, as skopeo's copy extracts them into buildah's and "
            "dockerd's stores); "
            "export = `kiln build --output type=oci,dest=x.tar` (export-zstd: with `--compression=zstd`) "
            "on a fresh root where the image was just built (kiln's store keeps built layers uncompressed "
            "and keeps a conversion once made, so each repetition starts without one and compresses "
            "every layer, as `buildah push` does); remote cache = `--cache-to "
            "type=registry,ref=REF,mode=max` / `--cache-from type=registry,ref=REF`"
        )

    def _kiln(self, sub: str, *args: str) -> list[str]:
        argv = [str(self.bin)]
        if self.root_before_sub:
            argv += ["--root", str(self.root)]
        argv.append(sub)
        if "--root" in self.sub_help.get(sub, ""):
            argv += ["--root", str(self.root)]
        return self.user.wrap(argv + list(args), {"KILN_ROOT": str(self.root)})

    def _help(self, *args: str) -> str:
        proc = sh(self.user.wrap([str(self.bin), *args, "--help"]), check=False, timeout=30)
        return proc.stdout if proc.returncode == 0 else ""

    def start(self) -> None:
        if not self.available or self.bin is None:
            return
        top = self._help()
        self.subcommands = _subcommands(top)
        if "build" not in self.subcommands:
            self.available = False
            listed = ", ".join(sorted(self.subcommands)) or "nothing"
            self.reason = f"kiln: not yet (`kiln --help` lists no `build` command; it lists {listed})"
            return
        for sub in ("build", "images", "push", "pull"):
            if sub in self.subcommands:
                self.sub_help[sub] = self._help(sub)
        # The root is always given as KILN_ROOT too; the flag is added where the help lists it.
        self.root_before_sub = "--root" in top and "--root" not in self.sub_help.get("build", "")
        make_user_dir(self.store, self.user)

    def version(self) -> str:
        if self.bin is None:
            return "not built"
        proc = sh([str(self.bin), "--version"], check=False, timeout=30)
        return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "kiln (no --version)"

    def base_refs(self, bases: list[BaseImage]) -> dict[str, str]:
        if self.preload_ok:
            return {b.placeholder: f"{b.ref_name}:latest" for b in bases}
        return {b.placeholder: f"oci-layout://{b.layout}:latest" for b in bases}

    def reset(self, bases: list[BaseImage]) -> None:
        sh(["rm", "-rf", str(self.root)], check=False)
        make_user_dir(self.root, self.user)
        os.chmod(self.root, 0o700)
        if not self.preload_ok:
            return
        for b in bases:
            ctx = self.preload_dir / b.key
            ctx.mkdir(parents=True, exist_ok=True)
            (ctx / "Dockerfile").write_text(f"FROM oci-layout://{b.layout}:latest\n")
            os.system(f"chmod -R a+rX '{self.preload_dir}'")
            proc = sh(
                self._kiln("build", "-t", f"{b.ref_name}:latest", "-f", str(ctx / "Dockerfile"), str(ctx)),
                check=False,
                timeout=900,
            )
            if proc.returncode != 0:
                self.preload_ok = False
                self.method_notes.append(
                    "kiln could not load base images into its store with a FROM-only build "
                    f"({tail(proc.stdout, 1)}); its Dockerfiles name them as oci-layout:// paths instead, "
                    "so its cold builds include reading the base from that layout"
                )
                return
        for b in bases:
            self._unpack(b)

    def _unpack(self, base: BaseImage) -> None:
        """Extract `base`'s layers into snapshots (what a RUN on it needs), untimed: kiln unpacks a
        layer the first time a step needs its files, and a FROM-only build needs none."""
        if not self.unpack_ok:
            return
        ctx = self.preload_dir / f"{base.key}-unpack"
        ctx.mkdir(parents=True, exist_ok=True)
        # `:` rather than `true`: no case runs this step, so it is no cache hit for one.
        (ctx / "Dockerfile").write_text(f"FROM {base.ref_name}:latest\nRUN : kiln-bench unpacks the base\n")
        os.system(f"chmod -R a+rX '{self.preload_dir}'")
        proc = sh(self._kiln("build", "-f", str(ctx / "Dockerfile"), str(ctx)), check=False, timeout=900)
        if proc.returncode != 0:
            self.unpack_ok = False
            self.method_notes.append(
                f"kiln could not unpack the base images before timing ({tail(proc.stdout, 1)}); its cold "
                "builds include extracting the base layers"
            )

    def build(self, dockerfile: Path, context: Path, tag: str, log: Path) -> Sample:
        return timed(self._kiln("build", "-f", str(dockerfile), "-t", tag, str(context)), log=log)

    def image_present(self, tag: str, log: Path) -> bool:
        if "images" not in self.subcommands:
            return True
        proc = sh(self._kiln("images"), check=False, log=log)
        return proc.returncode == 0 and _repository(tag) in proc.stdout

    def unsupported(self, scenario: str) -> str:
        build_help = self.sub_help.get("build", "")
        if scenario in ("export", "export-zstd") and "--output" not in build_help:
            return "kiln: not yet (`kiln build --help` has no --output)"
        if scenario == "export-zstd" and "--compression" not in build_help:
            return "kiln: not yet (`kiln build --help` has no --compression)"
        if scenario == "cache" and not ("--cache-to" in build_help and "--cache-from" in build_help):
            return "kiln: not yet (`kiln build --help` has no --cache-to/--cache-from)"
        if scenario in ("push", "pull") and scenario not in self.subcommands:
            return f"kiln: not yet (no `kiln {scenario}` command)"
        return ""

    def export(
        self, dockerfile: Path, context: Path, tag: str, dest: Path, log: Path, compression: str = "gzip"
    ) -> Sample:
        scenario = "export" if compression == "gzip" else f"export-{compression}"
        if self.unsupported(scenario):
            raise Unsupported(self.unsupported(scenario))
        out = ["--output", f"type=oci,dest={dest}"]
        if compression == "gzip":
            return timed(self._kiln("build", "-f", str(dockerfile), "-t", tag, *out, str(context)), log=log)
        # No -t: the tag keeps the image with gzip layers that push and pull measure.
        return timed(
            self._kiln("build", "-f", str(dockerfile), f"--compression={compression}", *out, str(context)), log=log
        )

    def cached_steps(self, output: str) -> int:
        return plain_cached_steps(output)

    def export_reuses_conversions(self, compression: str) -> bool:
        # kiln's store keeps built layers uncompressed: every export compresses (gzip too),
        # and a conversion once made is kept.
        return True

    def _tls(self) -> list[str]:
        return ["--tls-verify=false"] if "--tls-verify" in self.sub_help.get("build", "") else []

    def cache_export(
        self, dockerfile: Path, context: Path, tag: str, registry: str, repo: str, log: Path
    ) -> Sample:
        to = f"type=registry,ref={registry}/{repo}:cache,mode=max"
        return timed(
            self._kiln("build", *self._tls(), "--cache-to", to, "-f", str(dockerfile), "-t", tag, str(context)),
            log=log,
        )

    def cache_import(
        self, dockerfile: Path, context: Path, tag: str, registry: str, repo: str, log: Path
    ) -> Sample:
        src = f"type=registry,ref={registry}/{repo}:cache"
        return timed(
            self._kiln("build", *self._tls(), "--cache-from", src, "-f", str(dockerfile), "-t", tag, str(context)),
            log=log,
        )

    def push(self, tag: str, ref: str, log: Path) -> Sample:
        if self.unsupported("push"):
            raise Unsupported(self.unsupported("push"))
        tls = ["--tls-verify=false"] if "--tls-verify" in self.sub_help.get("push", "") else []
        return timed(self._kiln("push", *tls, tag, ref), log=log)

    def pull(self, ref: str, log: Path) -> Sample:
        if self.unsupported("pull"):
            raise Unsupported(self.unsupported("pull"))
        tls = ["--tls-verify=false"] if "--tls-verify" in self.sub_help.get("pull", "") else []
        return timed(self._kiln("pull", *tls, ref), log=log)

    def classify(self, sample: Sample) -> tuple[str, str, str]:
        lines = [l.strip() for l in sample.output.splitlines() if l.strip()]
        hit = next((l for l in lines if NOT_YET.search(l)), None)
        if hit is not None:
            hit = _DEBUG_REPR.sub("…", hit)  # e.g. `Run(RunOp { argv: [...], ... })` → `…`
            return "na", "n/a (kiln: not yet)", f"kiln: not yet ({hit[:200]})"
        if sample.rc == 2:
            return "na", "n/a (kiln: not yet)", f"kiln: not yet (usage error: {tail(sample.output, 2)[:200]})"
        return "error", "error", f"kiln exit {sample.rc}: {tail(sample.output, 3)[:300]}"
