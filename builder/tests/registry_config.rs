//! registries.conf parsing and merging, short-name resolution, mirrors; credential lookup in
//! auth.json and Docker's config.json; login files.

use std::path::Path;

use kiln_builder::reference::Reference;
use kiln_builder::registry::conf::{
    ConfPaths, MirrorUse, PullSource, RegistriesConf, ShortNameMode,
};
use kiln_builder::registry::credentials::{login_key, remove_login, store_login};
use kiln_builder::registry::{AuthFiles, Credential};

fn parse(text: &str) -> RegistriesConf {
    RegistriesConf::parse(text, Path::new("test.conf"), false).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    RegistriesConf::parse(text, Path::new("test.conf"), false).unwrap_err().to_string()
}

fn names(refs: &[Reference]) -> Vec<String> {
    refs.iter().map(ToString::to_string).collect()
}

fn sources(conf: &RegistriesConf, r: &str) -> Vec<(String, bool, bool)> {
    conf.pull_sources(&Reference::parse(r).unwrap())
        .unwrap()
        .into_iter()
        .map(|PullSource { reference, insecure, mirror }| (reference.to_string(), insecure, mirror))
        .collect()
}

const CONF: &str = r#"
unqualified-search-registries = ["registry.example.com", "quay.io"]
short-name-mode = "permissive"

[aliases]
"app" = "registry.example.com/team/app"
"busybox" = "docker.io/library/busybox"

[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror.local:5000/hub"
insecure = true
[[registry.mirror]]
location = "digests.local"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "example.com/old"
location = "new.example.com/moved"

[[registry]]
location = "127.0.0.1:5000"
insecure = true

[[registry]]
location = "evil.example.org"
blocked = true

[[registry]]
prefix = "*.corp.example"
insecure = true
"#;

#[test]
fn short_names_go_through_aliases_then_search_registries() {
    let conf = parse(CONF);
    let cases = [
        ("app", vec!["registry.example.com/team/app:latest"]),
        ("app:2", vec!["registry.example.com/team/app:2"]),
        ("busybox", vec!["docker.io/library/busybox:latest"]),
        ("tool:1", vec!["registry.example.com/tool:1", "quay.io/tool:1"]),
        ("org/tool", vec!["registry.example.com/org/tool:latest", "quay.io/org/tool:latest"]),
        ("quay.io/x/y:3", vec!["quay.io/x/y:3"]),
        ("localhost/y", vec!["localhost/y:latest"]),
    ];
    for (input, want) in cases {
        assert_eq!(names(&conf.candidates(input).unwrap()), want, "{input}");
    }
    // No search registries: Docker's default.
    let empty = parse("");
    assert_eq!(names(&empty.candidates("tool").unwrap()), ["docker.io/library/tool:latest"]);

    let enforcing = parse(
        "unqualified-search-registries = [\"a.io\", \"b.io\"]\nshort-name-mode = \"enforcing\"\n[aliases]\n\"ok\" = \"a.io/ok\"\n",
    );
    assert_eq!(names(&enforcing.candidates("ok").unwrap()), ["a.io/ok:latest"]);
    assert_eq!(
        enforcing.candidates("tool").unwrap_err().to_string(),
        "short name \"tool\": short-name-mode is \"enforcing\" and it could be in any of a.io, b.io; kiln cannot ask which: write the full name (e.g. a.io/tool) or add an alias"
    );
    assert_eq!(enforcing.short_name_mode, Some(ShortNameMode::Enforcing));
}

#[test]
fn mirrors_locations_insecure_and_blocked() {
    let conf = parse(CONF);
    let sha = format!("sha256:{}", "c".repeat(64));
    assert_eq!(
        sources(&conf, "busybox:1"),
        [
            ("mirror.local:5000/hub/library/busybox:1".to_string(), true, true),
            ("docker.io/library/busybox:1".to_string(), false, false),
        ]
    );
    assert_eq!(
        sources(&conf, &format!("busybox@{sha}")),
        [
            (format!("mirror.local:5000/hub/library/busybox@{sha}"), true, true),
            (format!("digests.local/library/busybox@{sha}"), false, true),
            (format!("docker.io/library/busybox@{sha}"), false, false),
        ]
    );
    assert_eq!(
        sources(&conf, "example.com/old/app:1"),
        [("new.example.com/moved/app:1".to_string(), false, false)]
    );
    // `example.com/older` is not under the `example.com/old` prefix.
    assert_eq!(
        sources(&conf, "example.com/older:1"),
        [("example.com/older:1".to_string(), false, false)]
    );
    assert_eq!(
        sources(&conf, "127.0.0.1:5000/a:1"),
        [("127.0.0.1:5000/a:1".to_string(), true, false)]
    );
    assert_eq!(
        sources(&conf, "git.corp.example/a:1"),
        [("git.corp.example/a:1".to_string(), true, false)]
    );
    let r = |s: &str| Reference::parse(s).unwrap();
    assert!(conf.insecure(&r("127.0.0.1:5000/x")));
    assert!(conf.insecure(&r("git.corp.example/x")));
    assert!(!conf.insecure(&r("corp.example/x")));
    assert!(!conf.insecure(&r("127.0.0.1:5001/x")));
    let blocked = conf.pull_sources(&r("evil.example.org/x:1")).unwrap_err();
    assert_eq!(blocked.to_string(), "registry evil.example.org is blocked in registries.conf");
    assert!(conf.check_blocked(&r("evil.example.org/y")).is_err());
    let hub = conf.find("docker.io/library/busybox:1").unwrap();
    assert_eq!(hub.mirrors[1].pull_from, MirrorUse::DigestOnly);
}

#[test]
fn drop_ins_override_in_name_order_and_version_1_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("registries.conf");
    std::fs::write(&main, CONF).unwrap();
    let d = dir.path().join("registries.conf.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(
        d.join("10-search.conf"),
        "unqualified-search-registries = [\"only.io\"]\n[aliases]\n\"app\" = \"\"\n\"new\" = \"only.io/new\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("20-hub.conf"),
        "[[registry]]\nlocation = \"docker.io\"\nblocked = true\n",
    )
    .unwrap();
    std::fs::write(d.join("30-ignored.txt"), "this is not TOML").unwrap();
    let conf = RegistriesConf::load(&ConfPaths {
        file: main.clone(),
        file_required: true,
        dirs: vec![d.clone()],
    })
    .unwrap();
    assert_eq!(conf.unqualified_search.as_deref(), Some(&["only.io".to_string()][..]));
    assert_eq!(names(&conf.candidates("app").unwrap()), ["only.io/app:latest"]);
    assert_eq!(names(&conf.candidates("new").unwrap()), ["only.io/new:latest"]);
    assert!(conf.find("docker.io/library/x").unwrap().blocked);
    assert!(conf.find("docker.io/library/x").unwrap().mirrors.is_empty());
    assert!(
        conf.insecure(&Reference::parse("127.0.0.1:5000/a").unwrap()),
        "entries of the main file stay"
    );

    std::fs::write(d.join("40-v1.conf"), "[registries.search]\nregistries = [\"x.io\"]\n").unwrap();
    let err =
        RegistriesConf::load(&ConfPaths { file: main, file_required: true, dirs: vec![d.clone()] })
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "registries configuration {}: drop-in files must use the version 2 format",
            d.join("40-v1.conf").display()
        )
    );

    let v1 = parse(
        "[registries.search]\nregistries = ['a.io', 'b.io']\n[registries.insecure]\nregistries = ['b.io']\n[registries.block]\nregistries = ['c.io']\n",
    );
    assert_eq!(
        v1.unqualified_search.as_deref(),
        Some(&["a.io".to_string(), "b.io".to_string()][..])
    );
    assert!(v1.insecure(&Reference::parse("b.io/x").unwrap()));
    assert!(v1.find("c.io/x").unwrap().blocked);

    // A missing main file is an empty configuration unless it was named explicitly.
    let missing = dir.path().join("nope.conf");
    let conf = RegistriesConf::load(&ConfPaths {
        file: missing.clone(),
        file_required: false,
        dirs: vec![],
    })
    .unwrap();
    assert_eq!(conf, RegistriesConf::default());
    assert!(RegistriesConf::load(&ConfPaths::only(missing)).is_err());
}

#[test]
fn invalid_files_say_what_is_wrong() {
    let cases = [
        (
            "[[registry]]\nlocation = \"https://x.io\"\n",
            "invalid location \"https://x.io\": URL schemes are not supported",
        ),
        ("[[registry]]\ninsecure = true\n", "a [[registry]] entry needs a location or a prefix"),
        (
            "[[registry]]\nprefix = \"*.x.io/a\"\n",
            "wildcard prefix \"*.x.io/a\" must look like *.example.com (no path or port)",
        ),
        (
            "[[registry]]\nlocation = \"x.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"sometimes\"\n",
            "unsupported pull-from-mirror value \"sometimes\"",
        ),
        (
            "[[registry]]\nlocation = \"x.io\"\ninsecure = true\n[[registry]]\nprefix = \"y.io\"\nlocation = \"x.io\"\n",
            "registry \"x.io\" is defined several times with conflicting 'insecure' settings",
        ),
        ("short-name-mode = \"loose\"\n", "invalid short-name-mode \"loose\""),
        (
            "unqualified-search-registries = [\"x.io/path\"]\n",
            "invalid unqualified-search-registries entry \"x.io/path\"",
        ),
        (
            "[aliases]\n\"a\" = \"b\"\n",
            "alias \"a\" = \"b\": the value must be a fully qualified repository without tag or digest",
        ),
        (
            "[aliases]\n\"a:1\" = \"x.io/a\"\n",
            "alias \"a:1\": must be a short name without registry, tag or digest",
        ),
        (
            "[registries.search]\nregistries = [\"a.io\"]\n[[registry]]\nlocation = \"b.io\"\n",
            "mixing version 1 and version 2 formats is not supported",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse_err(text),
            format!("registries configuration test.conf: {want}"),
            "{text}"
        );
    }
    assert!(
        parse_err("unqualified-search-registries = 3\n")
            .starts_with("registries configuration test.conf: TOML parse error")
    );
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn basic(u: &str, p: &str) -> Option<Credential> {
    Some(Credential::Basic { username: u.into(), password: p.into() })
}

#[test]
fn credentials_come_from_auth_json_then_docker_config() {
    let dir = tempfile::tempdir().unwrap();
    // base64("ns-user:ns-pw"), base64("reg-user:reg-pw"), base64("hub:hub-pw"), base64("old:old-pw")
    let auth = write(
        dir.path(),
        "auth.json",
        r#"{"auths": {
            "quay.io/team": {"auth": "bnMtdXNlcjpucy1wdw=="},
            "quay.io": {"auth": "cmVnLXVzZXI6cmVnLXB3"},
            "tokens.io": {"identitytoken": "refresh-me"}
        }}"#,
    );
    let docker = write(
        dir.path(),
        "config.json",
        r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOmh1Yi1wdw"},
            "http://old.example.com/v2/": {"auth": "b2xkOm9sZC1wdw=="},
            "plain.io": {"username": "u", "password": "p"},
            "marker.io": {}
        }}"#,
    );
    let files = AuthFiles::only(&auth).with_docker_config(&docker);
    let cases = [
        ("quay.io", "team/app", basic("ns-user", "ns-pw")),
        ("quay.io", "other/app", basic("reg-user", "reg-pw")),
        ("tokens.io", "a", Some(Credential::IdentityToken("refresh-me".into()))),
        ("docker.io", "library/busybox", basic("hub", "hub-pw")),
        ("index.docker.io", "library/busybox", basic("hub", "hub-pw")),
        ("old.example.com", "a", basic("old", "old-pw")),
        ("plain.io", "a", basic("u", "p")),
        ("marker.io", "a", None),
        ("nowhere.io", "a", None),
    ];
    for (registry, repo, want) in cases {
        assert_eq!(files.lookup(registry, repo).unwrap(), want, "{registry}/{repo}");
    }
    // Debug output never shows the secret.
    let shown = format!("{:?}", files.lookup("quay.io", "x").unwrap());
    assert_eq!(shown, "Some(Basic { username: \"reg-user\", password: <redacted> })");
    assert_eq!(format!("{:?}", Credential::IdentityToken("x".into())), "IdentityToken(<redacted>)");

    let broken =
        write(dir.path(), "broken.json", r#"{"auths": {"x.io": {"auth": "bm9jb2xvbg=="}}}"#);
    assert_eq!(
        AuthFiles::only(&broken).lookup("x.io", "a").unwrap_err().to_string(),
        format!(
            "credentials file {}: the \"auth\" of \"x.io\" has no ':' between user and password",
            broken.display()
        )
    );
    let not_json = write(dir.path(), "bad.json", "{");
    assert!(
        AuthFiles::only(&not_json)
            .lookup("x.io", "a")
            .unwrap_err()
            .to_string()
            .contains("invalid JSON")
    );
    assert_eq!(AuthFiles::only(dir.path().join("absent.json")).lookup("x.io", "a").unwrap(), None);
}

#[test]
fn logins_are_written_as_podman_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("containers/auth.json");
    write(dir.path(), "seed.json", "");
    store_login(&file, "registry.example.com", "me", "pa:ss").unwrap();
    store_login(&file, &login_key("https://index.docker.io/v1/"), "hub", "x").unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        "{\n\t\"auths\": {\n\t\t\"docker.io\": {\n\t\t\t\"auth\": \"aHViOng=\"\n\t\t},\n\t\t\"registry.example.com\": {\n\t\t\t\"auth\": \"bWU6cGE6c3M=\"\n\t\t}\n\t}\n}\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        AuthFiles::only(&file).lookup("registry.example.com", "a").unwrap(),
        basic("me", "pa:ss")
    );
    assert!(remove_login(&file, Some("registry.example.com")).unwrap());
    assert!(!remove_login(&file, Some("registry.example.com")).unwrap());
    assert!(remove_login(&file, None).unwrap());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\n\t\"auths\": {}\n}\n");
    for (input, key) in [
        ("quay.io", "quay.io"),
        ("https://quay.io/", "quay.io"),
        ("quay.io/team", "quay.io/team"),
        ("index.docker.io", "docker.io"),
        ("http://localhost:5000", "localhost:5000"),
    ] {
        assert_eq!(login_key(input), key, "{input}");
    }
}
