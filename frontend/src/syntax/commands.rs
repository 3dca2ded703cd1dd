//! Argument parsers for each instruction (BuildKit's line parsers and `instructions.parse*`).

use super::ast::{
    Add, ArgDecl, Command, CommandLine, Copy, DurationFlag, Flag, From, Healthcheck, KeyValue, Run,
    Source, Word,
};
use super::duration;
use super::flags::{self, Kind};
use super::heredoc::parse_opener;
use super::instruction::{Ctx, Parts};
use super::words::{Json, parse_words, split_sep, trim_range};
use crate::diag::Diagnostic;

type Parsed = Result<(Command, Vec<Flag>), Diagnostic>;

fn check(ctx: &Ctx<'_>, p: &Parts, table: &[(&str, Kind)]) -> Result<flags::Checked, Diagnostic> {
    flags::check(ctx.file, &p.upper, table, &p.flags, ctx.line)
}

/// Arguments that may be JSON (exec form) or shell form (BuildKit's `parseMaybeJSON`).
fn command_line(
    ctx: &mut Ctx<'_>,
    p: &Parts,
    a: usize,
    b: usize,
) -> Result<CommandLine, Diagnostic> {
    if a == b {
        return Ok(CommandLine::Shell(ctx.word(a, b)));
    }
    Ok(match ctx.json(a, b, &p.upper)? {
        Json::Strings(items) => CommandLine::Exec(
            items
                .into_iter()
                .map(|(text, s, e)| Word { text, span: ctx.line.span(s, e) })
                .collect(),
        ),
        _ => CommandLine::Shell(ctx.word(a, b)),
    })
}

/// Arguments that may be JSON or whitespace-separated words (BuildKit's
/// `parseMaybeJSONToList`). Returns the words and whether JSON was used.
fn word_list(ctx: &mut Ctx<'_>, p: &Parts) -> Result<(Vec<Word>, bool), Diagnostic> {
    Ok(match ctx.json(p.a, p.b, &p.upper)? {
        Json::Strings(items) => (
            items
                .into_iter()
                .map(|(text, s, e)| Word { text, span: ctx.line.span(s, e) })
                .collect(),
            true,
        ),
        _ => (
            split_sep(&ctx.line.text, p.a, p.b).into_iter().map(|(s, e)| ctx.word(s, e)).collect(),
            false,
        ),
    })
}

pub(crate) fn from(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, flags::FROM)?;
    let words: Vec<Word> =
        split_sep(&ctx.line.text, p.a, p.b).into_iter().map(|(s, e)| ctx.word(s, e)).collect();
    let usage = "write FROM image[:tag] [AS name]";
    let alias = match words.as_slice() {
        [] => {
            return ctx.err(
                p.kw_span,
                "FROM",
                "FROM needs a base image: FROM image[:tag] [AS name], or FROM scratch",
            );
        }
        [_] => None,
        [_, as_kw, name] if as_kw.text.eq_ignore_ascii_case("as") => {
            let lower = name.text.to_lowercase();
            let valid = lower.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && lower.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !valid {
                return ctx.err(
                    name.span,
                    "FROM",
                    format!(
                        "invalid stage name {:?}: a stage name starts with a letter and holds \
                         only letters, digits, \"-\", \"_\" and \".\"",
                        name.text
                    ),
                );
            }
            if lower != name.text {
                ctx.lint(
                    "StageNameCasing",
                    name.span,
                    "FROM",
                    format!("stage name {:?} should be lower-case: {lower:?}", name.text),
                );
            }
            let kw = &p.keyword;
            let from_lower = kw.to_lowercase() == *kw;
            let from_upper = kw.to_uppercase() == *kw;
            if (from_lower && as_kw.text.to_lowercase() != as_kw.text)
                || (!from_lower && from_upper && as_kw.text.to_uppercase() != as_kw.text)
            {
                ctx.lint(
                    "FromAsCasing",
                    as_kw.span,
                    "FROM",
                    format!("the casing of {:?} does not match {kw:?}", as_kw.text),
                );
            }
            Some(name.clone())
        }
        [_, as_kw] if as_kw.text.eq_ignore_ascii_case("as") => {
            return ctx.err(
                as_kw.span,
                "FROM",
                format!("missing the stage name after AS; {usage}"),
            );
        }
        [_, extra] => {
            return ctx.err(
                extra.span,
                "FROM",
                format!("unexpected {:?} after the image; {usage}", extra.text),
            );
        }
        [_, as_kw, _, extra, ..] if as_kw.text.eq_ignore_ascii_case("as") => {
            return ctx.err(
                extra.span,
                "FROM",
                format!("unexpected {:?} after the stage name; {usage}", extra.text),
            );
        }
        [_, other, ..] => {
            return ctx.err(
                other.span,
                "FROM",
                format!("expected AS before the stage name, found {:?}; {usage}", other.text),
            );
        }
    };
    let from = From { image: words[0].clone(), platform: checked.get("platform"), alias };
    Ok((Command::From(from), checked.all))
}

pub(crate) fn run(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, flags::RUN)?;
    for f in checked.get_all("mount") {
        if let Err(e) = super::mount::check(f.value.as_deref().unwrap_or("")) {
            let span = match e.field {
                Some((off, len)) => f.value_span(off, len),
                None => f.span,
            };
            return ctx.err(span, "RUN", format!("--mount: {}", e.message));
        }
    }
    let choices: [(&str, &[&str]); 2] =
        [("network", &["default", "none", "host"]), ("security", &["sandbox", "insecure"])];
    for (name, allowed) in choices {
        if let Some(f) = checked.get(name) {
            let v = f.value.clone().unwrap_or_default();
            if !allowed.contains(&v.as_str()) {
                return ctx.err(
                    f.span,
                    "RUN",
                    format!("invalid --{name} value {v:?}; use {}", allowed.join(", ")),
                );
            }
        }
    }
    let command = command_line(ctx, p, p.a, p.b)?;
    let run = Run {
        mounts: checked.get_all("mount"),
        network: checked.get("network"),
        security: checked.get("security"),
        command,
    };
    Ok((Command::Run(run), checked.all))
}

pub(crate) fn cmd(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, &[])?;
    Ok((Command::Cmd(command_line(ctx, p, p.a, p.b)?), checked.all))
}

pub(crate) fn entrypoint(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, &[])?;
    Ok((Command::Entrypoint(command_line(ctx, p, p.a, p.b)?), checked.all))
}

pub(crate) fn shell(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, &[])?;
    let args_span = ctx.line.span(p.a, p.b);
    if p.a == p.b {
        return ctx.err(p.kw_span, "SHELL", "SHELL needs a command: SHELL [\"/bin/sh\", \"-c\"]");
    }
    match ctx.json(p.a, p.b, "SHELL")? {
        Json::Strings(items) if items.is_empty() => {
            ctx.err(args_span, "SHELL", "SHELL needs a command: SHELL [\"/bin/sh\", \"-c\"]")
        }
        Json::Strings(items) => {
            let words = items
                .into_iter()
                .map(|(text, s, e)| Word { text, span: ctx.line.span(s, e) })
                .collect();
            Ok((Command::Shell(words), checked.all))
        }
        _ => {
            let text = ctx.text(p.a, p.b).to_lowercase();
            let mut msg =
                "SHELL needs the JSON form: SHELL [\"executable\", \"parameters\"]".to_string();
            let windows_path = text.contains('[')
                && text.contains(']')
                && !text.contains("\\\\")
                && text.as_bytes().windows(4).any(|w| {
                    w[0] == b'"' && w[1].is_ascii_lowercase() && w[2] == b':' && w[3] == b'\\'
                });
            if windows_path {
                msg.push_str(
                    "; a path with back-slashes must escape them in JSON: \
                     [\"c:\\\\path\\\\to\\\\file.exe\", \"/parameter\"]",
                );
            }
            ctx.err(args_span, "SHELL", msg)
        }
    }
}

pub(crate) fn env_or_label(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let instr = p.upper.as_str();
    let checked = check(ctx, p, &[])?;
    let text = ctx.line.text.clone();
    let words = parse_words(&text, p.a, p.b, ctx.escape);
    let Some(&(w0s, w0e)) = words.first() else {
        return ctx.err(p.kw_span, instr, format!("{instr} needs at least one KEY=value pair"));
    };
    let mut pairs = Vec::new();
    if !text[w0s..w0e].contains('=') {
        // Legacy `KEY value`: the key is the first run of non-blanks, the value the rest.
        let pieces = split_sep(&text, p.a, p.b);
        let (ks, ke) = pieces[0];
        let key = ctx.word(ks, ke);
        if pieces.len() < 2 {
            return ctx.err(
                key.span,
                instr,
                format!("{instr} {0} needs a value: write {instr} {0}=value", key.text),
            );
        }
        let (vs, _) = pieces[1];
        let value = ctx.word(vs, p.b);
        let span = ctx.line.span(p.a, p.b);
        ctx.lint(
            "LegacyKeyValueFormat",
            span,
            instr,
            format!(
                "legacy \"{instr} KEY value\" form; write {instr} {}=value (quote values with spaces)",
                key.text
            ),
        );
        pairs.push(KeyValue { key, value, legacy: true });
        return Ok((wrap_kv(instr, pairs), checked.all));
    }
    for (s, e) in words {
        let Some(eq) = text[s..e].find('=') else {
            return ctx.err(
                ctx.line.span(s, e),
                instr,
                format!(
                    "{:?} is not KEY=value; write KEY=value (quote a value with spaces: KEY=\"a b\")",
                    &text[s..e]
                ),
            );
        };
        if eq == 0 {
            return ctx.err(
                ctx.line.span(s, e),
                instr,
                format!("missing the name before \"=\" in {:?}", &text[s..e]),
            );
        }
        let key = ctx.word(s, s + eq);
        let value = ctx.word(s + eq + 1, e);
        pairs.push(KeyValue { key, value, legacy: false });
    }
    Ok((wrap_kv(instr, pairs), checked.all))
}

fn wrap_kv(instr: &str, pairs: Vec<KeyValue>) -> Command {
    if instr == "ENV" { Command::Env(pairs) } else { Command::Label(pairs) }
}

pub(crate) fn arg(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, &[])?;
    let text = ctx.line.text.clone();
    let words = parse_words(&text, p.a, p.b, ctx.escape);
    if words.is_empty() {
        return ctx.err(p.kw_span, "ARG", "ARG needs a name: ARG NAME[=default]");
    }
    let mut decls = Vec::new();
    for (s, e) in words {
        let decl = match text[s..e].find('=') {
            Some(0) => {
                return ctx.err(
                    ctx.line.span(s, e),
                    "ARG",
                    format!("missing the name before \"=\" in {:?}", &text[s..e]),
                );
            }
            Some(eq) => {
                ArgDecl { name: ctx.word(s, s + eq), default: Some(ctx.word(s + eq + 1, e)) }
            }
            None => ArgDecl { name: ctx.word(s, e), default: None },
        };
        decls.push(decl);
    }
    Ok((Command::Arg(decls), checked.all))
}

/// Sources and destination of `COPY`/`ADD`.
fn sources_and_dest(ctx: &mut Ctx<'_>, p: &Parts) -> Result<(Vec<Source>, Word, bool), Diagnostic> {
    let instr = p.upper.as_str();
    let (mut words, json) = word_list(ctx, p)?;
    if words.len() < 2 {
        let span = words.first().map_or(p.kw_span, |w| w.span);
        return ctx.err(
            span,
            instr,
            format!(
                "{instr} needs a source and a destination: {instr} <src>... <dest> \
                 (the destination is the last argument)"
            ),
        );
    }
    let dest = words.pop().unwrap_or_else(|| ctx.word(p.b, p.b));
    if parse_opener(&dest.text).is_some() {
        return ctx.err(
            dest.span,
            instr,
            format!("{instr} cannot take a heredoc as its destination; put the destination last"),
        );
    }
    let sources = words
        .into_iter()
        .map(|word| match parse_opener(&word.text) {
            Some((fd, chomp, name, expand)) => {
                let mut doc =
                    ctx.heredocs.iter().rev().find(|d| d.name == name).cloned().unwrap_or(
                        super::ast::Heredoc {
                            name: name.clone(),
                            content: String::new(),
                            expand,
                            chomp,
                            fd,
                            span: word.span,
                            body_span: word.span,
                        },
                    );
                doc.chomp = chomp;
                doc.expand = expand;
                Source::Heredoc { word, doc }
            }
            None => Source::Path(word),
        })
        .collect();
    Ok((sources, dest, json))
}

pub(crate) fn copy(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, flags::COPY)?;
    let (sources, dest, json) = sources_and_dest(ctx, p)?;
    let copy = Copy {
        from: checked.get("from"),
        chown: checked.get("chown"),
        chmod: checked.get("chmod"),
        link: checked.bool("link"),
        parents: checked.bool("parents"),
        exclude: checked.get_all("exclude"),
        sources,
        dest,
        json,
    };
    Ok((Command::Copy(copy), checked.all))
}

pub(crate) fn add(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, flags::ADD)?;
    let (sources, dest, json) = sources_and_dest(ctx, p)?;
    let add = Add {
        chown: checked.get("chown"),
        chmod: checked.get("chmod"),
        link: checked.bool("link"),
        keep_git_dir: checked.bool("keep-git-dir"),
        checksum: checked.get("checksum"),
        unpack: checked.opt_bool("unpack"),
        exclude: checked.get_all("exclude"),
        sources,
        dest,
        json,
    };
    Ok((Command::Add(add), checked.all))
}

/// `WORKDIR`, `USER`, `MAINTAINER`, `STOPSIGNAL`: the rest of the line is one argument.
pub(crate) fn single(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let instr = p.upper.as_str();
    let flags = if instr == "STOPSIGNAL" {
        // BuildKit never checks STOPSIGNAL's flags: accept them, but say they do nothing.
        let all = flags::convert(&p.flags, ctx.line);
        if let Some(f) = all.first() {
            ctx.lint(
                "IgnoredFlag",
                f.span,
                instr,
                format!("STOPSIGNAL ignores {}; remove it", f.text()),
            );
        }
        all
    } else {
        check(ctx, p, &[])?.all
    };
    if p.a == p.b {
        let what = match instr {
            "WORKDIR" => "a path: WORKDIR /path",
            "USER" => "a user: USER name[:group] or USER uid[:gid]",
            "MAINTAINER" => {
                "a name (MAINTAINER is deprecated: use LABEL org.opencontainers.image.authors=...)"
            }
            _ => "a signal: STOPSIGNAL SIGTERM (or a number)",
        };
        return ctx.err(p.kw_span, instr, format!("{instr} needs {what}"));
    }
    let word = ctx.word(p.a, p.b);
    let command = match instr {
        "WORKDIR" => Command::Workdir(word),
        "USER" => Command::User(word),
        "MAINTAINER" => {
            ctx.lint(
                "MaintainerDeprecated",
                p.kw_span,
                instr,
                "MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=\"...\"",
            );
            Command::Maintainer(word)
        }
        _ => Command::StopSignal(word),
    };
    Ok((command, flags))
}

pub(crate) fn expose(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, &[])?;
    let words: Vec<Word> =
        split_sep(&ctx.line.text, p.a, p.b).into_iter().map(|(s, e)| ctx.word(s, e)).collect();
    if words.is_empty() {
        return ctx.err(p.kw_span, "EXPOSE", "EXPOSE needs at least one port: EXPOSE 80 443/tcp");
    }
    Ok((Command::Expose(words), checked.all))
}

pub(crate) fn volume(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    let checked = check(ctx, p, &[])?;
    let (words, json) = word_list(ctx, p)?;
    if words.is_empty() {
        return ctx.err(p.kw_span, "VOLUME", "VOLUME needs at least one path: VOLUME /data");
    }
    let mut paths = Vec::with_capacity(words.len());
    for mut w in words {
        w.text = w.text.trim().to_string();
        if w.text.is_empty() {
            return ctx.err(w.span, "VOLUME", "a VOLUME path cannot be empty");
        }
        paths.push(w);
    }
    Ok((Command::Volume { paths, json }, checked.all))
}

fn duration_flag(ctx: &Ctx<'_>, f: Option<Flag>) -> Result<Option<DurationFlag>, Diagnostic> {
    let Some(flag) = f else { return Ok(None) };
    let v = flag.value.clone().unwrap_or_default();
    if v.is_empty() {
        return Ok(None);
    }
    let nanos = match duration::parse(&v) {
        Ok(n) => n,
        Err(e) => {
            return ctx.err(
                flag.span,
                "HEALTHCHECK",
                format!(
                    "--{}: {e}; write a number with a unit, like 30s, 1m30s or 500ms",
                    flag.name
                ),
            );
        }
    };
    if nanos != 0 && nanos < 1_000_000 {
        return ctx.err(
            flag.span,
            "HEALTHCHECK",
            format!("--{} must be at least 1ms (or 0 for the default)", flag.name),
        );
    }
    Ok(Some(DurationFlag { flag, nanos }))
}

pub(crate) fn healthcheck(ctx: &mut Ctx<'_>, p: &Parts) -> Parsed {
    if p.a == p.b {
        return ctx.err(p.kw_span, "HEALTHCHECK", "HEALTHCHECK needs CMD <command> or NONE");
    }
    let text = ctx.line.text.clone();
    let sep = text[p.a..p.b].find(char::is_whitespace).map_or(p.b, |i| p.a + i);
    let (rest, _) = trim_range(&text, sep, p.b);
    let typ = ctx.word(p.a, sep);
    if typ.text.eq_ignore_ascii_case("NONE") {
        if rest < p.b {
            return ctx.err(
                ctx.line.span(rest, p.b),
                "HEALTHCHECK",
                "HEALTHCHECK NONE takes no arguments",
            );
        }
        // BuildKit does not check flags with NONE: accept them, but say they do nothing.
        let all = flags::convert(&p.flags, ctx.line);
        if let Some(f) = all.first() {
            ctx.lint(
                "IgnoredFlag",
                f.span,
                "HEALTHCHECK",
                format!("HEALTHCHECK NONE ignores {}; remove it", f.text()),
            );
        }
        return Ok((Command::Healthcheck(Healthcheck::None), all));
    }
    let checked = check(ctx, p, flags::HEALTHCHECK)?;
    if !typ.text.eq_ignore_ascii_case("CMD") {
        return ctx.err(
            typ.span,
            "HEALTHCHECK",
            format!(
                "unknown HEALTHCHECK type {:?}: write HEALTHCHECK CMD <command> or HEALTHCHECK NONE",
                typ.text
            ),
        );
    }
    let command = command_line(ctx, p, rest, p.b)?;
    if command.args().is_empty() {
        return ctx.err(typ.span, "HEALTHCHECK", "HEALTHCHECK CMD needs a command to run");
    }
    let retries = match checked.get("retries") {
        Some(f) if f.value.as_deref().is_some_and(|v| !v.is_empty()) => {
            let v = f.value.clone().unwrap_or_default();
            match v.parse::<i32>() {
                Ok(n) if n < 0 => {
                    return ctx.err(
                        f.span,
                        "HEALTHCHECK",
                        format!("--retries cannot be negative ({n})"),
                    );
                }
                Ok(n) => Some((f, n)),
                Err(_) => {
                    return ctx.err(
                        f.span,
                        "HEALTHCHECK",
                        format!("--retries takes a whole number, not {v:?}"),
                    );
                }
            }
        }
        _ => None,
    };
    let hc = Healthcheck::Cmd {
        command,
        interval: duration_flag(ctx, checked.get("interval"))?,
        timeout: duration_flag(ctx, checked.get("timeout"))?,
        start_period: duration_flag(ctx, checked.get("start-period"))?,
        start_interval: duration_flag(ctx, checked.get("start-interval"))?,
        retries,
    };
    Ok((Command::Healthcheck(hc), checked.all))
}
