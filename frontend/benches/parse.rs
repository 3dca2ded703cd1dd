//! Parse + lower benchmarks: one generated 10,000-line Dockerfile, and 1,000 generated
//! real-world-sized Dockerfiles (multi-stage builds of 25–70 lines mixing every instruction,
//! continuations, heredocs, mounts and variables). Run with `cargo bench -p kiln-frontend`.

use std::fmt::Write as _;

use divan::counter::ItemsCount;
use kiln_frontend::graph::{ImageResolver, ResolvedImage};
use kiln_frontend::lower::{LowerOptions, lower};
use kiln_frontend::syntax::parse;

fn main() {
    divan::main();
}

/// Every image exists, with the same small config (parsed once, as a real resolver caches).
struct Images(kiln_frontend::ContainerConfig);

impl Images {
    fn new() -> Self {
        Images(
            serde_json::from_str(
                r#"{"Env":["PATH=/usr/local/bin:/usr/bin:/bin","LANG=C.UTF-8"],"Cmd":["sh"],"WorkingDir":"/"}"#,
            )
            .expect("config JSON"),
        )
    }
}

impl ImageResolver for Images {
    fn resolve(&self, reference: &str, _: Option<&str>) -> Result<ResolvedImage, String> {
        Ok(ResolvedImage {
            reference: reference.to_string(),
            id: format!("sha256:{reference}"),
            config: self.0.clone(),
            os: "linux".into(),
            architecture: "amd64".into(),
        })
    }
}

fn options() -> LowerOptions {
    LowerOptions {
        target_platform: "linux/amd64".into(),
        build_platform: "linux/amd64".into(),
        ..Default::default()
    }
}

/// A deterministic pseudo-random sequence (xorshift), so every run benchmarks the same files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const BASES: [&str; 6] = [
    "golang:1.22",
    "node:20-bookworm",
    "python:3.12-slim",
    "debian:bookworm",
    "alpine:3.20",
    "rust:1.80",
];

/// One stage of a realistic Dockerfile; `i` makes names unique.
fn stage(out: &mut String, rng: &mut Rng, i: usize, previous: Option<usize>) {
    let base = match previous {
        Some(p) if rng.below(3) == 0 => format!("stage{p}"),
        _ => BASES[rng.below(BASES.len() as u64) as usize].to_string(),
    };
    let _ = writeln!(out, "FROM ${{REGISTRY:-docker.io}}/{base} AS stage{i}");
    let _ = writeln!(out, "ARG VERSION=1.{i}.0\nARG TARGETARCH");
    let _ = writeln!(
        out,
        "ENV APP_HOME=/srv/app{i} \\\n    PATH=/srv/app{i}/bin:$PATH \\\n    LANG=C.UTF-8"
    );
    let _ = writeln!(out, "WORKDIR $APP_HOME");
    let _ = writeln!(
        out,
        "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\\n    \
         --mount=type=cache,target=/var/lib/apt \\\n    \
         apt-get update && apt-get install -y --no-install-recommends \\\n        \
         ca-certificates curl git build-essential && \\\n    \
         rm -rf /var/lib/apt/lists/*"
    );
    let _ = writeln!(out, "COPY --chown=app:app --chmod=0644 go.mod go.sum package*.json ./");
    let _ = writeln!(
        out,
        "RUN --mount=type=secret,id=npmrc,target=/root/.npmrc \\\n    \
         --mount=type=bind,source=vendor,target=/vendor \\\n    \
         make deps VERSION=${{VERSION}} ARCH=${{TARGETARCH:-amd64}}"
    );
    if rng.below(2) == 0 {
        let _ = writeln!(
            out,
            "RUN <<EOF\nset -eux\necho building $VERSION\n./configure --prefix=/usr/local\nmake -j$(nproc)\nEOF"
        );
    }
    let _ = writeln!(out, "COPY --exclude=*.md --link . .");
    if let Some(p) = previous {
        let _ = writeln!(out, "COPY --from=stage{p} /srv /opt/prev{p}");
    }
    let _ = writeln!(
        out,
        "LABEL org.opencontainers.image.version=$VERSION \\\n      org.opencontainers.image.source=\"https://example.com/app{i}\""
    );
    let _ = writeln!(out, "EXPOSE 80{:02}/tcp 9000-9003", i % 100);
    let _ = writeln!(out, "USER app:app\nVOLUME [\"/data\"]");
    let _ = writeln!(
        out,
        "HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -fsS http://localhost/health || exit 1"
    );
    let _ = writeln!(out, "ENTRYPOINT [\"/srv/app/bin/start\"]\nCMD [\"--port\", \"8080\"]");
}

/// A Dockerfile of at least `lines` lines made of stages.
fn dockerfile(rng: &mut Rng, stages: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1.7\nARG REGISTRY\n\n");
    for i in 0..stages {
        let previous = (i > 0).then(|| rng.below(i as u64) as usize);
        stage(&mut out, rng, i, previous);
        out.push('\n');
    }
    // The last stage uses every other one, so nothing is pruned.
    let _ = writeln!(out, "FROM scratch");
    for i in 0..stages {
        let _ = writeln!(out, "COPY --from=stage{i} /srv /stage{i}");
    }
    out
}

fn big() -> String {
    let mut rng = Rng(7);
    let mut stages = 1;
    loop {
        let text = dockerfile(&mut rng, stages);
        if text.lines().count() >= 10_000 {
            return text;
        }
        stages += 1;
    }
}

fn many() -> Vec<String> {
    let mut rng = Rng(11);
    (0..1000)
        .map(|_| {
            let stages = 1 + rng.below(3) as usize;
            dockerfile(&mut rng, stages)
        })
        .collect()
}

#[divan::bench(sample_count = 20)]
fn parse_and_lower_10000_lines(bencher: divan::Bencher) {
    let text = big();
    let resolver = Images::new();
    let options = options();
    bencher.counter(ItemsCount::new(text.lines().count())).bench(|| {
        let df = parse("Dockerfile", divan::black_box(&text)).expect("parses");
        lower(&df, &options, &resolver).expect("lowers")
    });
}

#[divan::bench(sample_count = 10)]
fn parse_and_lower_1000_dockerfiles(bencher: divan::Bencher) {
    let files = many();
    let resolver = Images::new();
    let options = options();
    bencher.counter(ItemsCount::new(files.len())).bench(|| {
        for text in &files {
            let df = parse("Dockerfile", divan::black_box(text)).expect("parses");
            divan::black_box(lower(&df, &options, &resolver).expect("lowers"));
        }
    });
}

#[divan::bench(sample_count = 10)]
fn parse_only_1000_dockerfiles(bencher: divan::Bencher) {
    let files = many();
    bencher.counter(ItemsCount::new(files.len())).bench(|| {
        for text in &files {
            divan::black_box(parse("Dockerfile", divan::black_box(text)).expect("parses"));
        }
    });
}
