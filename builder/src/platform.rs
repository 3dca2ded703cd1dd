//! Platforms (`os/arch[/variant]`) with Go's names, as OCI uses them.

use std::fmt;

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v7`, `v8`, or none.
    pub variant: Option<String>,
}

/// A platform string that cannot be parsed (the message says why).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PlatformError(pub String);

impl Platform {
    /// The platform of this machine.
    pub fn host() -> Platform {
        Platform::from_parts(kiln_frontend::lower::host_platform())
    }

    /// Parses `os/arch[/variant]` (or `os`, or `arch`), normalized as containerd and the
    /// Dockerfile frontend do (`linux/x86_64` is `linux/amd64`, `linux/arm` is
    /// `linux/arm/v7`).
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        kiln_frontend::lower::normalize_platform(s).map(Platform::from_parts).map_err(PlatformError)
    }

    fn from_parts((os, architecture, variant): (String, String, String)) -> Platform {
        Platform { os, architecture, variant: (!variant.is_empty()).then_some(variant) }
    }

    /// Whether an index entry's platform is this one (a missing variant matches any).
    pub fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.architecture
            && match (&self.variant, p.variant()) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes_like_the_frontend() {
        let p = Platform::parse("linux/x86_64").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str(), p.variant), ("linux", "amd64", None));
        assert_eq!(Platform::parse("Linux/ARM").unwrap().to_string(), "linux/arm/v7");
        assert_eq!(Platform::parse("linux/arm64/v8").unwrap().to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/amd64/v2/x").unwrap_err().to_string(),
            "invalid platform \"linux/amd64/v2/x\": write os/arch[/variant], like linux/amd64 or linux/arm/v7"
        );
        let host = Platform::host();
        assert_eq!(Platform::parse(&host.to_string()).unwrap(), host);
    }
}
