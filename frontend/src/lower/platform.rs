//! Platforms (`os/arch[/variant]`), normalized the way containerd's `platforms.Parse` does,
//! and the default `PATH` BuildKit gives every stage.

/// The `PATH` BuildKit sets when an image has none (Linux).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An OS, CPU architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// GOARCH name: `amd64`, `arm64`, `arm`, `386`, ...
    pub arch: String,
    /// `v7`, `v8`, ... or empty.
    pub variant: String,
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let v = variant.to_string();
    match arch {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            ("amd64".into(), if v == "v1" { String::new() } else { v })
        }
        "aarch64" | "arm64" => {
            ("arm64".into(), if v == "8" || v == "v8" { String::new() } else { v })
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match v.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{v}"),
                _ => v,
            };
            ("arm".into(), v)
        }
        other => (other.to_string(), v),
    }
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

impl Platform {
    /// The platform kiln runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "arm" => "arm",
            other => other,
        };
        let (arch, variant) = normalize_arch(arch, "");
        Platform { os: std::env::consts::OS.to_string(), arch, variant }
    }

    /// Parses `os/arch[/variant]`, `os` or `arch`. The error is a message for the user.
    pub fn parse(spec: &str) -> Result<Platform, String> {
        let lower = spec.to_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if parts.iter().any(|p| !valid(p)) || parts.len() > 3 {
            return Err(format!(
                "invalid platform {spec:?}: write os/arch[/variant], like linux/amd64 or linux/arm/v7"
            ));
        }
        let os = |o: &str| if o == "macos" { "darwin".to_string() } else { o.to_string() };
        let host = Platform::host();
        match parts.as_slice() {
            [one] => {
                if KNOWN_OS.contains(&os(one).as_str()) {
                    return Ok(Platform { os: os(one), ..host });
                }
                let (arch, variant) = normalize_arch(one, "");
                if KNOWN_ARCH.contains(&arch.as_str()) {
                    return Ok(Platform { os: host.os, arch, variant });
                }
                Err(format!(
                    "invalid platform {spec:?}: {one:?} is neither an OS nor an architecture; \
                     write os/arch, like linux/amd64"
                ))
            }
            [o, a] => {
                let (arch, variant) = normalize_arch(a, "");
                Ok(Platform { os: os(o), arch, variant })
            }
            [o, a, v] => {
                let (arch, variant) = normalize_arch(a, v);
                Ok(Platform { os: os(o), arch, variant })
            }
            _ => Err(format!("invalid platform {spec:?}: write os/arch[/variant]")),
        }
    }

    /// `os/arch[/variant]`.
    pub fn format(&self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.os, self.arch)
        } else {
            format!("{}/{}/{}", self.os, self.arch, self.variant)
        }
    }
}

/// `spec` (`os/arch[/variant]`, `os` or `arch`) normalized as containerd does:
/// `(os, arch, variant)`, the variant empty when there is none. The error is a message for
/// the user.
pub fn normalize(spec: &str) -> Result<(String, String, String), String> {
    Platform::parse(spec).map(|p| (p.os, p.arch, p.variant))
}

/// The platform kiln runs on, normalized: `(os, arch, variant)`.
pub fn host() -> (String, String, String) {
    let p = Platform::host();
    (p.os, p.arch, p.variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_containerd() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("Linux/X86_64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/i386", "linux/386"),
            ("windows/amd64", "windows/amd64"),
        ];
        for (input, want) in cases {
            assert_eq!(Platform::parse(input).map(|p| p.format()), Ok(want.to_string()), "{input}");
        }
        assert_eq!(Platform::parse("arm64").map(|p| p.arch), Ok("arm64".to_string()));
        assert_eq!(Platform::parse("linux").map(|p| p.os), Ok("linux".to_string()));
        assert!(Platform::parse("").is_err());
        assert!(Platform::parse("linux/amd64/v2/x").is_err());
        assert!(Platform::parse("li nux/amd64").is_err());
        assert!(Platform::parse("bogus").is_err());
    }
}
