//! OCI annotations of the outputs: `--annotation [TYPE[,TYPE]:]KEY=VALUE` (buildx's syntax)
//! and the `annotation[-TYPE].KEY=VALUE` output options (BuildKit's). They change the manifest
//! or `index.json`, never a layer or the config.
//!
//! Types: `manifest` (the default) → the image manifest's `annotations`;
//! `manifest-descriptor` → the manifest's descriptor in an OCI layout's or archive's
//! `index.json`; `index` → the `annotations` of that `index.json`. kiln builds one platform and
//! writes no image index of its own, so `index-descriptor` and platform qualifiers
//! (`manifest[linux/amd64]:`) are refused.

use std::collections::BTreeMap;

/// Annotations by where they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// On the image manifest.
    pub manifest: BTreeMap<String, String>,
    /// On the manifest's descriptor in `index.json` (OCI layouts and archives).
    pub manifest_descriptor: BTreeMap<String, String>,
    /// On `index.json` itself (OCI layouts and archives).
    pub index: BTreeMap<String, String>,
}

impl Annotations {
    fn add(&mut self, kind: &str, key: &str, value: &str) -> Result<(), String> {
        if key.is_empty() {
            return Err("the annotation key is empty".to_string());
        }
        let map = match kind {
            "manifest" => &mut self.manifest,
            "manifest-descriptor" => &mut self.manifest_descriptor,
            "index" => &mut self.index,
            "index-descriptor" => {
                return Err("index-descriptor annotations need an image index, which a \
                            single-platform kiln build does not write"
                    .to_string());
            }
            k if k.contains('[') => {
                return Err(format!(
                    "platform-qualified annotations ({k}) are not supported: kiln builds one platform"
                ));
            }
            other => {
                return Err(format!(
                    "unknown annotation type {other:?} (manifest, manifest-descriptor, index)"
                ));
            }
        };
        map.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Adds a `--annotation` value: `KEY=VALUE`, or `TYPES:KEY=VALUE` with TYPES a
    /// comma-separated list of `manifest`, `manifest-descriptor`, `index`.
    pub fn add_flag(&mut self, spec: &str) -> Result<(), String> {
        let (lhs, value) =
            spec.split_once('=').ok_or_else(|| format!("{spec:?}: expected KEY=VALUE"))?;
        let (types, key) = match lhs.split_once(':') {
            Some((types, key)) => (types, key),
            None => ("manifest", lhs),
        };
        for kind in types.split(',') {
            self.add(kind.trim(), key, value).map_err(|e| format!("{spec:?}: {e}"))?;
        }
        Ok(())
    }

    /// Takes an output option if it is an annotation (`annotation.KEY`,
    /// `annotation-TYPE.KEY`); returns whether it was.
    pub fn add_option(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let Some(rest) = key.strip_prefix("annotation") else { return Ok(false) };
        let (kind, name) = match rest.split_once('.') {
            Some(("", name)) => ("manifest", name),
            Some((kind, name)) if kind.starts_with('-') => (&kind[1..], name),
            _ => return Ok(false),
        };
        self.add(kind, name, value)?;
        Ok(true)
    }

    /// These annotations over `base`'s (an output's over the build's flags).
    pub fn over(&self, base: &Annotations) -> Annotations {
        let merge = |mine: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>| {
            let mut out = theirs.clone();
            out.extend(mine.iter().map(|(k, v)| (k.clone(), v.clone())));
            out
        };
        Annotations {
            manifest: merge(&self.manifest, &base.manifest),
            manifest_descriptor: merge(&self.manifest_descriptor, &base.manifest_descriptor),
            index: merge(&self.index, &base.index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_options() {
        let mut a = Annotations::default();
        a.add_flag("org.opencontainers.image.title=kiln").unwrap();
        a.add_flag("index,manifest-descriptor:team=core").unwrap();
        a.add_flag("manifest:empty=").unwrap();
        assert_eq!(a.manifest["org.opencontainers.image.title"], "kiln");
        assert_eq!(a.manifest["empty"], "");
        assert_eq!(a.index["team"], "core");
        assert_eq!(a.manifest_descriptor["team"], "core");
        assert!(a.add_option("annotation.x", "1").unwrap());
        assert!(a.add_option("annotation-index.y", "2").unwrap());
        assert!(!a.add_option("annotations", "2").unwrap());
        assert!(!a.add_option("dest", "2").unwrap());
        assert_eq!(a.manifest["x"], "1");
        assert_eq!(a.index["y"], "2");
        assert_eq!(a.add_flag("novalue").unwrap_err(), "\"novalue\": expected KEY=VALUE");
        assert_eq!(
            a.add_flag("layer:k=v").unwrap_err(),
            "\"layer:k=v\": unknown annotation type \"layer\" (manifest, manifest-descriptor, index)"
        );
        assert_eq!(
            a.add_option("annotation-index-descriptor.k", "v").unwrap_err(),
            "index-descriptor annotations need an image index, which a single-platform kiln build does not write"
        );
        assert_eq!(
            a.add_flag("manifest[linux/amd64]:k=v").unwrap_err(),
            "\"manifest[linux/amd64]:k=v\": platform-qualified annotations (manifest[linux/amd64]) are not supported: kiln builds one platform"
        );
        let mut out = Annotations::default();
        out.add_flag("x=output").unwrap();
        let merged = out.over(&a);
        assert_eq!(merged.manifest["x"], "output");
        assert_eq!(merged.manifest["empty"], "");
    }
}
