//! `RUN --mount=...` values: a CSV record of `key=value` options (BuildKit's `parseMount`).
//!
//! Parsing happens twice, as in BuildKit: while the Dockerfile is parsed, only the CSV syntax
//! and `from` (which never expands variables) are checked ([`check`]); when `RUN` is lowered,
//! every value is expanded and the whole mount validated ([`parse`]). Options are read left to
//! right, so options that depend on the type (`required`, `size`) must come after `type=`.

use crate::syntax::closest_word;

/// The mount types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountType {
    /// `bind` (the default).
    #[default]
    Bind,
    /// `cache`.
    Cache,
    /// `tmpfs`.
    Tmpfs,
    /// `secret`.
    Secret,
    /// `ssh`.
    Ssh,
}

impl MountType {
    /// The name as written in `type=`.
    pub fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

const TYPES: [&str; 5] = ["bind", "cache", "tmpfs", "secret", "ssh"];
const SHARING: [&str; 3] = ["shared", "private", "locked"];
const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// A `--mount` value with its options typed, before `from` is resolved and defaults are filled.
/// Empty strings mean "not given", as in BuildKit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountSpec {
    /// `type=`.
    pub kind: MountType,
    /// `from=`: a stage name or index, `scratch`, or an image reference.
    pub from: String,
    /// `source=` / `src=`.
    pub source: String,
    /// `target=` / `dst=` / `destination=`.
    pub target: String,
    /// Read-only, after BuildKit's default (bind, secret, ssh: yes; cache, tmpfs: no).
    pub readonly: bool,
    /// `id=`.
    pub id: String,
    /// `sharing=` (lower-cased), empty when not given.
    pub sharing: String,
    /// `required` (secret and ssh).
    pub required: bool,
    /// `size=` in bytes (tmpfs).
    pub size: Option<u64>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `env=` (secret).
    pub env: Option<String>,
}

/// Why a `--mount` value is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountError {
    /// The message for the user.
    pub message: String,
    /// Character offset and length of the offending field in the value, when one is to blame.
    pub field: Option<(usize, usize)>,
}

impl MountError {
    fn at(field: &Field, message: impl Into<String>) -> Self {
        MountError { message: message.into(), field: Some((field.offset, field.len)) }
    }

    fn whole(message: impl Into<String>) -> Self {
        MountError { message: message.into(), field: None }
    }
}

/// One CSV field with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    text: String,
    /// Offset in characters of the field in the value.
    offset: usize,
    /// Length in characters of the field as written (quotes included).
    len: usize,
}

/// The fields of a comma-separated option list (`--mount`, `--output`, `--cache-to` values),
/// read as Go's `encoding/csv` reads a record, as BuildKit and docker do: `"` quotes a field
/// that holds commas (`dest="a,b"` is not; `"dest=a,b"` is), `""` inside quotes is a quote.
/// The error says what is wrong with the quoting.
pub fn split_fields(value: &str) -> Result<Vec<String>, String> {
    split_csv(value)
        .map(|fields| fields.into_iter().map(|f| f.text).collect())
        .map_err(|e| e.message)
}

/// Splits one CSV record the way Go's `encoding/csv` reads it (comma separator, `"` quoting
/// with `""` for a quote, no space trimming).
fn split_csv(value: &str) -> Result<Vec<Field>, MountError> {
    if !value.contains('"') {
        // No quoting: plain comma-separated fields.
        let mut offset = 0;
        return Ok(value
            .split(',')
            .map(|f| {
                let len = f.chars().count();
                let field = Field { text: f.to_string(), offset, len };
                offset += len + 1;
                field
            })
            .collect());
    }
    let chars: Vec<char> = value.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        let mut text = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(MountError {
                            message: "a quoted option has no closing '\"'".to_string(),
                            field: Some((start, chars.len() - start)),
                        });
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        text.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        text.push(c);
                        i += 1;
                    }
                }
            }
            if !matches!(chars.get(i), None | Some(',')) {
                return Err(MountError {
                    message: "text after the closing '\"' of a quoted option; quote the whole \
                              option: \"key=value\""
                        .to_string(),
                    field: Some((start, i + 1 - start)),
                });
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    let end =
                        chars[i..].iter().position(|&c| c == ',').map_or(chars.len(), |p| i + p);
                    return Err(MountError {
                        message: "a '\"' inside an option must be doubled and the whole option \
                                  quoted: \"key=a\"\"b\""
                            .to_string(),
                        field: Some((start, end - start)),
                    });
                }
                text.push(c);
                i += 1;
            }
        }
        fields.push(Field { text, offset: start, len: i - start });
        if i >= chars.len() {
            return Ok(fields);
        }
        i += 1; // the comma
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parse-time check (BuildKit's parse without an expander): the CSV syntax, and that `from`
/// uses no variables.
pub fn check(value: &str) -> Result<(), MountError> {
    for field in split_csv(value)? {
        let Some((key, v)) = field.text.split_once('=') else { continue };
        if key.eq_ignore_ascii_case("from") && v.find('$').is_some_and(|i| i + 1 != v.len()) {
            return Err(MountError::at(
                &field,
                format!(
                    "from={v} uses a variable, but from is never expanded; name the image in \
                     a stage instead: ARG IMG=... before the first FROM, FROM $IMG AS src, \
                     then --mount=from=src"
                ),
            ));
        }
    }
    Ok(())
}

/// The raw `from=` value of a mount (the last one), for finding the stages a `RUN` needs.
pub fn from_of(value: &str) -> Option<String> {
    let fields = split_csv(value).ok()?;
    fields.iter().rev().find_map(|f| {
        let (k, v) = f.text.split_once('=')?;
        k.eq_ignore_ascii_case("from").then(|| v.to_string())
    })
}

/// The mount type a value asks for (`bind` when none or when invalid).
pub fn type_of(value: &str) -> MountType {
    let Ok(fields) = split_csv(value) else { return MountType::Bind };
    let mut kind = MountType::Bind;
    for f in fields {
        if let Some((k, v)) = f.text.split_once('=')
            && k.eq_ignore_ascii_case("type")
        {
            kind = mount_type(v).unwrap_or(kind);
        }
    }
    kind
}

fn mount_type(v: &str) -> Option<MountType> {
    Some(match v.to_lowercase().as_str() {
        "bind" => MountType::Bind,
        "cache" => MountType::Cache,
        "tmpfs" => MountType::Tmpfs,
        "secret" => MountType::Secret,
        "ssh" => MountType::Ssh,
        _ => return None,
    })
}

fn with_suggestion(msg: String, word: &str, candidates: &[&str], list: &str) -> String {
    match closest_word(word, candidates.iter().copied()) {
        Some(s) => format!("{msg}; did you mean {s}?"),
        None => format!("{msg}; {list}"),
    }
}

/// Parses a mount value, expanding every option value with `expand` (which returns the
/// expansion error's message on failure), and validates it as BuildKit does.
pub fn parse(
    value: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<MountSpec, MountError> {
    if value.is_empty() {
        return Err(MountError::whole(
            "--mount needs options: --mount=type=TYPE,target=PATH[,...]",
        ));
    }
    let fields = split_csv(value)?;
    let mut m = MountSpec::default();
    let mut ro_auto = true;
    let file_info = |m: &MountSpec| matches!(m.kind, MountType::Secret | MountType::Ssh);
    for field in &fields {
        let f = field;
        let Some((key_raw, raw)) = f.text.split_once('=') else {
            match f.text.to_lowercase().as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if file_info(&m) => m.required = true,
                "required" => {
                    return Err(MountError::at(
                        f,
                        format!(
                            "required is only for secret and ssh mounts, not {}; put type= first",
                            m.kind.name()
                        ),
                    ));
                }
                _ => {
                    return Err(MountError::at(
                        f,
                        format!("--mount option {0:?} needs a value: {0}=VALUE", f.text),
                    ));
                }
            }
            continue;
        };
        let key = key_raw.to_lowercase();
        let v = expand(raw).map_err(|e| MountError::at(f, format!("{key}={raw}: {e}")))?;
        let bad = |what: &str| MountError::at(f, format!("{key}={v}: {what}"));
        match key.as_str() {
            "type" => {
                m.kind = mount_type(&v).ok_or_else(|| {
                    MountError::at(
                        f,
                        with_suggestion(
                            format!("unsupported mount type {v:?}"),
                            &v.to_lowercase(),
                            &TYPES,
                            "the types are bind, cache, tmpfs, secret and ssh",
                        ),
                    )
                })?;
            }
            "from" => m.from = v,
            "source" | "src" => m.source = v,
            "target" | "dst" | "destination" => m.target = v,
            "readonly" | "ro" => {
                m.readonly = parse_bool(&v).ok_or_else(|| bad("takes true or false"))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&v).ok_or_else(|| bad("takes true or false"))?;
                ro_auto = false;
            }
            "required" if file_info(&m) => {
                m.required = parse_bool(&v).ok_or_else(|| bad("takes true or false"))?;
            }
            "required" => {
                return Err(MountError::at(
                    f,
                    format!(
                        "required is only for secret and ssh mounts, not {}; put type= first",
                        m.kind.name()
                    ),
                ));
            }
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(super::units::ram_in_bytes(&v).ok_or_else(|| {
                    bad("not a size; write bytes or a number with a unit, like 64m or 1g")
                })?);
            }
            "size" => {
                return Err(MountError::at(
                    f,
                    format!(
                        "size is only for tmpfs mounts, not {}; put type=tmpfs first",
                        m.kind.name()
                    ),
                ));
            }
            "id" => m.id = v,
            "sharing" => {
                let lower = v.to_lowercase();
                if !SHARING.contains(&lower.as_str()) {
                    return Err(MountError::at(
                        f,
                        with_suggestion(
                            format!("unsupported sharing value {v:?}"),
                            &lower,
                            &SHARING,
                            "use shared, private or locked",
                        ),
                    ));
                }
                m.sharing = lower;
            }
            "mode" => {
                let ok = !v.is_empty() && v.bytes().all(|b| (b'0'..=b'7').contains(&b));
                m.mode = Some(
                    ok.then(|| u32::from_str_radix(&v, 8).ok())
                        .flatten()
                        .ok_or_else(|| bad("not an octal mode like 0755"))?,
                );
            }
            "uid" | "gid" => {
                let id = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<u32>().ok())
                    .flatten()
                    .ok_or_else(|| bad("not a numeric id"))?;
                if key == "uid" {
                    m.uid = Some(id);
                } else {
                    m.gid = Some(id);
                }
            }
            "env" => m.env = Some(v),
            _ => {
                return Err(MountError::at(
                    f,
                    with_suggestion(
                        format!("unknown --mount option {key:?}"),
                        &key,
                        &KEYS,
                        "the options are type, from, source, target, readonly, readwrite, id, \
                         sharing, required, size, mode, uid, gid and env",
                    ),
                ));
            }
        }
    }
    validate(&mut m, ro_auto)?;
    Ok(m)
}

fn validate(m: &mut MountSpec, ro_auto: bool) -> Result<(), MountError> {
    let kind = m.kind.name();
    if !matches!(m.kind, MountType::Secret | MountType::Ssh | MountType::Cache) {
        for (name, set) in
            [("mode", m.mode.is_some()), ("uid", m.uid.is_some()), ("gid", m.gid.is_some())]
        {
            if set {
                return Err(MountError::whole(format!(
                    "{name} is not allowed for {kind} mounts (only cache, secret and ssh mounts \
                     take mode, uid and gid)"
                )));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err(MountError::whole("a secret mount cannot have from="));
        }
        if !m.sharing.is_empty() {
            return Err(MountError::whole("a secret mount cannot have sharing="));
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err(MountError::whole(
                "a secret mount needs id= (or target=): --mount=type=secret,id=NAME",
            ));
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err(MountError::whole(
                "a secret mount takes id= or source=, not both (they mean the same)",
            ));
        }
    }
    if !m.sharing.is_empty() && m.kind != MountType::Cache {
        return Err(MountError::whole(format!(
            "sharing= is only for cache mounts, not {kind} mounts"
        )));
    }
    if m.kind == MountType::Ssh && !m.source.is_empty() {
        return Err(MountError::whole("an ssh mount does not take source="));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str) -> MountSpec {
        parse(v, &mut |s| Ok(s.to_string())).unwrap_or_else(|e| panic!("{v}: {e:?}"))
    }

    fn err(v: &str) -> MountError {
        parse(v, &mut |s| Ok(s.to_string())).unwrap_err()
    }

    #[test]
    fn csv_like_go() {
        let texts = |v: &str| {
            split_csv(v).unwrap().into_iter().map(|f| (f.text, f.offset, f.len)).collect::<Vec<_>>()
        };
        assert_eq!(texts("a=1,b=2"), [("a=1".into(), 0, 3), ("b=2".into(), 4, 3)]);
        assert_eq!(texts("\"a=x,y\",b"), [("a=x,y".into(), 0, 7), ("b".into(), 8, 1)]);
        assert_eq!(texts("\"a=\"\"q\"\"\""), [("a=\"q\"".into(), 0, 9)]);
        assert_eq!(texts("a,"), [("a".into(), 0, 1), (String::new(), 2, 0)]);
        assert!(split_csv("a=\"x\"").unwrap_err().message.contains("doubled"));
        assert!(split_csv("\"a=x").unwrap_err().message.contains("no closing"));
        assert!(split_csv("\"a\"b").unwrap_err().message.contains("after the closing"));
    }

    #[test]
    fn defaults_and_options() {
        let m = ok("type=cache,target=/root/.cache,sharing=LOCKED,uid=1000,mode=0700");
        assert_eq!(m.kind, MountType::Cache);
        assert!(!m.readonly);
        assert_eq!(m.sharing, "locked");
        assert_eq!((m.uid, m.mode), (Some(1000), Some(0o700)));
        let b = ok("target=/src,from=build,source=/out,rw");
        assert_eq!(b.kind, MountType::Bind);
        assert!(!b.readonly);
        assert!(ok("dst=/x").readonly);
        let t = ok("type=tmpfs,target=/t,size=64m");
        assert_eq!(t.size, Some(64 << 20));
        let s = ok("type=secret,id=tok,env=TOKEN,required");
        assert!(s.required && s.readonly);
        assert_eq!(s.env.as_deref(), Some("TOKEN"));
        assert!(ok("TYPE=SSH,Required=false").kind == MountType::Ssh);
    }

    #[test]
    fn errors_name_the_field() {
        let e = err("type=bind,trget=/x");
        assert_eq!(e.message, "unknown --mount option \"trget\"; did you mean target?");
        assert_eq!(e.field, Some((10, 8)));
        assert!(err("type=bnd").message.contains("did you mean bind?"));
        assert!(err("type=volume").message.contains("the types are bind"));
        assert!(err("required,type=secret,id=x").message.starts_with("required is only"));
        assert!(err("type=bind,size=1g").message.starts_with("size is only for tmpfs"));
        assert!(err("type=bind,uid=1").message.starts_with("uid is not allowed for bind"));
        assert!(err("type=cache,sharing=maybe").message.contains("use shared, private"));
        assert!(err("type=cache,mode=999").message.contains("octal"));
        assert!(err("type=secret").message.contains("needs id="));
        assert!(err("type=secret,id=a,src=b").message.contains("not both"));
        assert!(err("type=secret,id=a,from=x").message.contains("cannot have from"));
        assert!(err("type=tmpfs,target=/t,sharing=shared").message.contains("only for cache"));
        assert!(err("type=ssh,source=x").message.contains("does not take source"));
        assert!(err("target=/x,foo").message.contains("needs a value"));
        assert!(err("ro=maybe").message.contains("true or false"));
        assert!(err("").message.contains("needs options"));
    }

    #[test]
    fn parse_time_check_and_from() {
        assert!(check("type=bind,from=$IMG").unwrap_err().message.contains("never expanded"));
        assert!(check("type=bind,from=stage$").is_ok());
        assert!(check("type=bind,source=$X").is_ok());
        assert_eq!(from_of("from=a,target=/x,FROM=b"), Some("b".into()));
        assert_eq!(from_of("target=/x"), None);
        assert_eq!(type_of("type=cache,target=/x"), MountType::Cache);
    }
}
