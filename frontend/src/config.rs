//! The container config an image carries (the `config` object of an OCI/Docker image config).
//!
//! kiln's own struct rather than `oci-spec`'s: it needs Docker's `Healthcheck`, `OnBuild` and
//! `Shell`, and it must keep fields it does not know so that a base image's config survives a
//! rebuild. Maps are `BTreeMap`s so serialization is byte-stable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The runtime defaults of an image, with Docker's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `USER`: `user[:group]`, names or ids.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `EXPOSE`: keys like `80/tcp`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "empty_object_map")]
    pub exposed_ports: BTreeMap<String, ()>,
    /// `ENV`: `KEY=value` entries, in definition order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ENTRYPOINT`, exec form (shell form is stored as `[shell..., "cmd"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`, exec form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`: mount points.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "empty_object_map")]
    pub volumes: BTreeMap<String, ()>,
    /// `WORKDIR`: absolute path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `LABEL`s.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Docker's Windows-only flag; kept when a base image sets it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers, as written.
    #[serde(default, rename = "OnBuild", skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// `SHELL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
    /// Fields kiln does not interpret, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Docker's `HEALTHCHECK` settings. Durations are nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// `--interval`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// `--timeout`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// `--start-period`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// `--start-interval`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// `--retries`.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub retries: i32,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

impl ContainerConfig {
    /// The value of environment variable `key`, if set.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if kv == key => Some(""),
            _ => None,
        })
    }

    /// Sets `key=value`, replacing an earlier definition in place (Docker keeps the position).
    pub fn env_set(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .env
            .iter_mut()
            .find(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = entry,
            None => self.env.push(entry),
        }
    }
}

/// Docker writes sets as `{"key": {}}`.
mod empty_object_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize, Default)]
    struct Empty {}

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, ()>, s: S) -> Result<S::Ok, S::Error> {
        let as_objects: BTreeMap<&String, Empty> = map.keys().map(|k| (k, Empty {})).collect();
        as_objects.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, ()>, D::Error> {
        let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
        Ok(raw.unwrap_or_default().into_keys().map(|k| (k, ())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_docker_json_and_keeps_unknown_fields() {
        let json = r#"{"User":"app","ExposedPorts":{"80/tcp":{}},"Env":["PATH=/bin","A=1"],"Cmd":["sh"],"Volumes":{"/data":{}},"WorkingDir":"/w","Labels":{"b":"2","a":"1"},"Image":"sha256:abc","Hostname":""}"#;
        let cfg: ContainerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.user, "app");
        assert_eq!(cfg.env_get("A"), Some("1"));
        assert!(cfg.exposed_ports.contains_key("80/tcp"));
        assert_eq!(cfg.other.get("Image").and_then(|v| v.as_str()), Some("sha256:abc"));
        let out = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            out,
            r#"{"User":"app","ExposedPorts":{"80/tcp":{}},"Env":["PATH=/bin","A=1"],"Cmd":["sh"],"Volumes":{"/data":{}},"WorkingDir":"/w","Labels":{"a":"1","b":"2"},"Hostname":"","Image":"sha256:abc"}"#
        );
    }

    #[test]
    fn env_set_replaces_in_place() {
        let mut cfg =
            ContainerConfig { env: vec!["A=1".into(), "B=2".into()], ..Default::default() };
        cfg.env_set("A", "3");
        cfg.env_set("C", "4");
        assert_eq!(cfg.env, ["A=3", "B=2", "C=4"]);
    }
}
