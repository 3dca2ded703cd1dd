//! Checks and formats for metadata instructions: `EXPOSE` port specs, `STOPSIGNAL` names and
//! the `HEALTHCHECK` history text.

use super::gofmt;
use crate::config::Healthcheck;
use crate::syntax::duration;

/// Splits `80/tcp` into (`tcp`, `80`) like go-connections' `SplitProtoPort`.
fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp".into(), parts[0].into());
    }
    (parts[1].into(), parts[0].into())
}

fn port_number(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What `EXPOSE` makes of one port spec: the `port/proto` keys, and notes for warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExposeSpec {
    /// `80/tcp`, one per port of a range.
    pub ports: Vec<String>,
    /// The protocol was not written in lower case.
    pub proto_casing: bool,
    /// An IP address or host port was written (ignored).
    pub host_part: bool,
}

/// Parses one `EXPOSE` port spec (`80`, `80/udp`, `8000-8010/tcp`; a leading `ip:host:` part
/// is accepted and ignored, as go-connections' `ParsePortSpecs` does).
pub(crate) fn parse_expose(spec: &str) -> Result<ExposeSpec, String> {
    let container = spec.rsplit(':').next().unwrap_or(spec);
    let (proto, port) = split_proto_port(container);
    let usage = "write a port or range with an optional protocol, like 80, 53/udp or 8000-8010/tcp";
    if port.is_empty() {
        return Err(format!("no port in {spec:?}: {usage}"));
    }
    let (start, end) = match port.split_once('-') {
        Some((a, b)) => (port_number(a), port_number(b)),
        None => (port_number(&port), port_number(&port)),
    };
    let (Some(start), Some(end)) = (start, end) else {
        return Err(format!("invalid port {port:?} in {spec:?}: {usage}"));
    };
    if end < start {
        return Err(format!("invalid port range {port:?}: the end is below the start"));
    }
    let lower = proto.to_lowercase();
    if !matches!(lower.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol {proto:?} in {spec:?}: use tcp, udp or sctp"));
    }
    Ok(ExposeSpec {
        ports: (start..=end).map(|p| format!("{p}/{lower}")).collect(),
        proto_casing: proto != lower,
        host_part: spec.contains(':'),
    })
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// Whether `sig` names a signal (moby's `signal.ParseSignal` on Linux: a non-zero number, or a
/// name with or without `SIG`, any case, including `RTMIN+n`/`RTMAX-n`).
pub(crate) fn valid_signal(sig: &str) -> bool {
    if let Ok(n) = sig.parse::<i64>() {
        return n != 0;
    }
    let upper = sig.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) {
        return true;
    }
    let rt = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=15).contains(&n) || (prefix == "RTMAX-" && n == 14))
    };
    rt("RTMIN+") || rt("RTMAX-")
}

/// BuildKit's history text for `HEALTHCHECK`: Go's `%q` of the config struct.
pub(crate) fn healthcheck_history(h: &Healthcheck) -> String {
    format!(
        "HEALTHCHECK &{{{} {} {} {} {} {}}}",
        gofmt::quote_list(&h.test),
        gofmt::quote(&duration::format(h.interval)),
        gofmt::quote(&duration::format(h.timeout)),
        gofmt::quote(&duration::format(h.start_period)),
        gofmt::quote(&duration::format(h.start_interval)),
        gofmt::quote_rune(i64::from(h.retries)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_specs_like_go_connections() {
        let ok = |s: &str| parse_expose(s).unwrap().ports;
        assert_eq!(ok("80"), ["80/tcp"]);
        assert_eq!(ok("53/udp"), ["53/udp"]);
        assert_eq!(ok("53/UDP"), ["53/udp"]);
        assert!(parse_expose("53/UDP").unwrap().proto_casing);
        assert_eq!(ok("8000-8002"), ["8000/tcp", "8001/tcp", "8002/tcp"]);
        assert_eq!(ok("80/"), ["80/tcp"]);
        assert_eq!(ok("127.0.0.1:8080:80"), ["80/tcp"]);
        assert!(parse_expose("8080:80").unwrap().host_part);
        for bad in ["", "/tcp", "http", "80/icmp", "70000", "9-3", "-1"] {
            assert!(parse_expose(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_like_moby() {
        for good in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-14", "sigkill", "-1"] {
            assert!(valid_signal(good), "{good}");
        }
        for bad in ["0", "SIGFOO", "", "RTMIN+16", "TERM X"] {
            assert!(!valid_signal(bad), "{bad}");
        }
    }

    #[test]
    fn healthcheck_history_is_gos_struct_format() {
        let h = Healthcheck {
            test: vec!["CMD-SHELL".into(), "curl -f http://localhost/".into()],
            interval: 300_000_000_000,
            timeout: 3_000_000_000,
            retries: 3,
            ..Default::default()
        };
        assert_eq!(
            healthcheck_history(&h),
            r#"HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/"] "5m0s" "3s" "0s" "0s" '\x03'}"#
        );
    }
}
