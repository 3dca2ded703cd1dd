//! Whole-file warnings BuildKit's linter gives before lowering: instruction casing, stage
//! names, secrets in `ARG`/`ENV` names, and a redundant `FROM --platform=$TARGETPLATFORM`.

use crate::diag::Diagnostic;
use crate::syntax::{CheckConfig, Command, Dockerfile};

/// Words that make an `ARG`/`ENV` name look like a secret, and the word that clears it.
const SECRET_WORDS: [&str; 10] = [
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];

/// Whether `name` looks like it holds a secret (`API_KEY`, `db_password`; not `PUBLIC_KEY`).
pub(crate) fn looks_secret(name: &str) -> bool {
    let words: Vec<String> = name.split('_').map(str::to_ascii_lowercase).collect();
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str())) && !words.iter().any(|w| w == "public")
}

fn consistent(s: &str) -> Option<bool> {
    if s == s.to_lowercase() {
        Some(true)
    } else if s == s.to_uppercase() {
        Some(false)
    } else {
        None
    }
}

/// The warnings about `df` as a whole.
pub(crate) fn file_lints(df: &Dockerfile, check: &CheckConfig) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let file = df.file.as_str();
    let in_stages: Vec<_> =
        df.instructions.iter().skip_while(|i| !matches!(i.command, Command::From(_))).collect();
    if check.allows("ConsistentInstructionCasing") {
        let (mut lower, mut upper) = (0, 0);
        for i in &in_stages {
            match consistent(&i.keyword) {
                Some(true) => lower += 1,
                Some(false) => upper += 1,
                None => {}
            }
        }
        let majority_lower = lower > upper;
        for i in &in_stages {
            let wrong = if majority_lower {
                i.keyword != i.keyword.to_lowercase()
            } else {
                i.keyword != i.keyword.to_uppercase()
            };
            if wrong {
                let (case, want) = if majority_lower {
                    ("lower", i.keyword.to_lowercase())
                } else {
                    ("upper", i.keyword.to_uppercase())
                };
                out.push(
                    Diagnostic::warning(
                        file,
                        i.keyword_span,
                        format!(
                            "{:?} should be written in {case} case like most instructions of this \
                             file: {want}",
                            i.keyword
                        ),
                    )
                    .in_instruction(i.name()),
                );
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    for i in &in_stages {
        match &i.command {
            Command::From(f) => {
                if let Some(alias) = &f.alias {
                    let name = alias.text.to_lowercase();
                    if matches!(name.as_str(), "context" | "scratch")
                        && check.allows("ReservedStageName")
                    {
                        out.push(
                            Diagnostic::warning(
                                file,
                                alias.span,
                                format!(
                                    "stage name {name:?} is reserved (it means {}); choose \
                                     another name",
                                    if name == "scratch" {
                                        "the empty image"
                                    } else {
                                        "the build context"
                                    }
                                ),
                            )
                            .in_instruction("FROM"),
                        );
                    }
                    if names.contains(&name) && check.allows("DuplicateStageName") {
                        out.push(
                            Diagnostic::warning(
                                file,
                                alias.span,
                                format!(
                                    "duplicate stage name {name:?}: references to it will use \
                                     this last one; give each stage its own name"
                                ),
                            )
                            .in_instruction("FROM"),
                        );
                    }
                    names.push(name);
                }
                if let Some(p) = &f.platform
                    && matches!(p.value.as_deref(), Some("$TARGETPLATFORM" | "${TARGETPLATFORM}"))
                    && check.allows("RedundantTargetPlatform")
                {
                    out.push(
                        Diagnostic::warning(
                            file,
                            p.span,
                            "--platform=$TARGETPLATFORM is what FROM uses anyway; remove the flag",
                        )
                        .in_instruction("FROM"),
                    );
                }
            }
            Command::Arg(decls) => {
                for d in decls {
                    secret_lint(&mut out, file, check, "ARG", &d.name);
                }
            }
            Command::Env(pairs) => {
                for kv in pairs {
                    secret_lint(&mut out, file, check, "ENV", &kv.key);
                }
            }
            _ => {}
        }
    }
    out
}

fn secret_lint(
    out: &mut Vec<Diagnostic>,
    file: &str,
    check: &CheckConfig,
    instr: &str,
    name: &crate::syntax::Word,
) {
    if looks_secret(&name.text) && check.allows("SecretsUsedInArgOrEnv") {
        out.push(
            Diagnostic::warning(
                file,
                name.span,
                format!(
                    "{instr} {:?} looks like a secret: {instr} values are kept in the image's \
                     history and config; pass secrets with RUN --mount=type=secret instead",
                    name.text
                ),
            )
            .in_instruction(instr),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::looks_secret;

    #[test]
    fn secret_names() {
        for yes in ["API_KEY", "db_password", "GITHUB_TOKEN", "secret_MESSAGE", "AUTH", "apikey"] {
            assert!(looks_secret(yes), "{yes}");
        }
        for no in ["PUBLIC_KEY", "KEYS", "MONKEY", "PATH", "TOKENIZER_VERSION"] {
            assert!(!looks_secret(no), "{no}");
        }
    }
}
