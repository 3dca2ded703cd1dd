//! The `# check=` directive: which warnings (BuildKit "lint rules") to skip, and whether
//! warnings fail the build.

/// Parsed `# check=skip=Rule1,Rule2;error=true`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Rule names to skip.
    pub skip: Vec<String>,
    /// `skip=all`.
    pub skip_all: bool,
    /// `error=true`: any warning fails the build.
    pub error: bool,
}

impl CheckConfig {
    /// Parses the directive's value. The error is a message for the user.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut cfg = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(cfg);
        }
        for part in value.split(';') {
            let Some((key, v)) = part.split_once('=') else {
                return Err(format!(
                    "invalid check option {part:?}: write skip=RULE[,RULE], skip=all or error=true"
                ));
            };
            match key.trim() {
                "skip" => {
                    let v = v.trim();
                    if v == "all" {
                        cfg.skip_all = true;
                    } else {
                        cfg.skip = v.split(',').map(|r| r.trim().to_string()).collect();
                    }
                }
                "error" => {
                    cfg.error = match v.trim() {
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                        other => {
                            return Err(format!(
                                "invalid check option error={other}: use error=true or error=false"
                            ));
                        }
                    }
                }
                "experimental" => {}
                other => {
                    return Err(format!(
                        "unknown check option {other:?}: the options are skip, error and \
                         experimental"
                    ));
                }
            }
        }
        Ok(cfg)
    }

    /// Whether warnings of `rule` are reported.
    pub fn allows(&self, rule: &str) -> bool {
        !self.skip_all && !self.skip.iter().any(|r| r == rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildkit_check_options() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true").unwrap();
        assert_eq!(c.skip, ["JSONArgsRecommended", "StageNameCasing"]);
        assert!(c.error);
        assert!(!c.allows("StageNameCasing"));
        assert!(c.allows("MaintainerDeprecated"));
        let all = CheckConfig::parse("skip=all").unwrap();
        assert!(!all.allows("anything"));
        assert!(CheckConfig::parse("").unwrap().allows("x"));
        assert!(CheckConfig::parse("bogus").is_err());
        assert!(CheckConfig::parse("error=maybe").is_err());
        assert!(CheckConfig::parse("colour=red").is_err());
    }
}
